#!/usr/bin/python3
"""Loads a seccomp filter equal to systemd's for the given directives, then execs argv.

  seccomp-exec.py SYSCALL_FILTER ADDRESS_FAMILIES -- argv...

SYSCALL_FILTER is a SystemCallFilter= allow list of syscall groups and names (expanded
with `systemd-analyze syscall-filter`, as systemd does); anything else fails with EPERM
(SystemCallErrorNumber=EPERM). The filter, made by libseccomp like systemd's, admits the
native architecture only (SystemCallArchitectures=native). ADDRESS_FAMILIES ("AF_UNIX
AF_INET", or "-" for none) restricts socket(2)'s first argument (RestrictAddressFamilies=;
systemd answers EAFNOSUPPORT where this answers EPERM). Needs no_new_privs already set.
"""
import ctypes
import errno
import os
import socket
import subprocess
import sys

sep = sys.argv.index("--")
syscall_filter, families, argv = sys.argv[1], sys.argv[2], sys.argv[sep + 1 :]


def expand(name, seen):
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            calls |= expand(entry, seen)
    return calls


calls = set()
for item in syscall_filter.split():
    calls |= expand(item, set())

lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
lib.seccomp_load.argtypes = [ctypes.c_void_p]


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
ctx = lib.seccomp_init(0x00050000 | errno.EPERM)
restrict = families != "-"
for call in sorted(calls):
    nr = lib.seccomp_syscall_resolve_name(call.encode())
    if nr < 0 or (restrict and call == "socket"):
        continue  # not a syscall of this architecture
    if lib.seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 0, None) < 0:
        sys.exit(f"seccomp: cannot allow {call}")
if restrict and "socket" in calls:
    nr = lib.seccomp_syscall_resolve_name(b"socket")
    for family in families.split():
        cmp = ArgCmp(0, SCMP_CMP_EQ, getattr(socket, family), 0)
        if lib.seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, ctypes.byref(cmp)) < 0:
            sys.exit(f"seccomp: cannot allow socket({family})")
if lib.seccomp_load(ctx) < 0:
    sys.exit("seccomp: load failed (no_new_privs must be set)")
os.execvp(argv[0], argv)
