"""vmxlint: find missing, stale, redundant and ill-formed vmcs02 writes in nested VMX patches."""

__version__ = "0.1.0"
__all__ = ("__version__",)
