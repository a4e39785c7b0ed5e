// Syntactic duplicate-write rule, the peer benchmarks/run.py times vmxlint against:
// the same VMCS field written twice by a vmcs_writeNN() accessor in one function
// with no vmcs_readNN() of it in between.  It knows no guards, call chains or
// hardware rules, so it is the cheapest version of VMX102 a syntactic tool can do.
//
//   spatch --very-quiet --sp-file benchmarks/duplicate-write.cocci -D report \
//          <tree>/arch/x86/kvm/vmx/nested.c

virtual report

@dup@
identifier W1 =~ "^vmcs_write(16|32|64|l)$";
identifier W2 =~ "^vmcs_write(16|32|64|l)$";
expression F, E1, E2;
position p1, p2;
@@
W1@p1(F, E1);
... when != vmcs_read16(F)
    when != vmcs_read32(F)
    when != vmcs_read64(F)
    when != vmcs_readl(F)
W2@p2(F, E2);

@script:python depends on dup && report@
p1 << dup.p1;
p2 << dup.p2;
f << dup.F;
@@
coccilib.report.print_report(p1[0], "WARNING: %s written twice (again at line %s)"
                             % (f, p2[0].line))
