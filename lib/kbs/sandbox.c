/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network process's sandbox (docs/ARCHITECTURE.md, "Privilege separation"). In
 * order, before its threads start (they inherit all of it):
 *  1. as root: the configured user's uid and gid, no supplementary groups, no
 *     capabilities left (a setuid away from root clears them);
 *  2. PR_SET_NO_NEW_PRIVS;
 *  3. Landlock, where the kernel has it: files only to read, and only what name
 *     resolution, TLS trust stores and shared libraries need;
 *  4. seccomp: an allow-list of system calls; open only for reading; no exec, no
 *     ptrace, no new processes (threads only), no listening sockets;
 *  5. a check that fails closed: the store and the master key must not open now.
 * A sanitizer build skips 3 and 4 (LeakSanitizer stops the world with ptrace) and says
 * so in the report.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <linux/landlock.h>
#include <seccomp.h>

#include "kbs/kbs-int.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif
#ifndef SANITIZER_BUILD
#define SANITIZER_BUILD 0
#endif

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#define ACCESS_FS_TRUNCATE (1ULL << 14)  /* ABI 3 */
#define ACCESS_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */

/* ---- 1. the user ---- */

static int drop_user(const char *user, struct kbs_sandbox_report *rep, struct tdc_error *e)
{
	if (geteuid() != 0) {
		rep->uid = (unsigned)getuid();
		rep->gid = (unsigned)getgid();
		return 0; /* nothing to drop; Landlock and the check below still apply */
	}
	const char *name = user && *user ? user : "nobody";
	struct passwd *pw = getpwnam(name);
	if (!pw)
		return TDC_FAILF(e, TDC_E_USAGE, "no such user for the network process", "%s", name);
	if (pw->pw_uid == 0)
		return TDC_FAILF(e, TDC_E_USAGE, "the network process may not run as root", "%s",
				 name);
	gid_t gid = pw->pw_gid;
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot drop privileges", "to %s: %s", name,
				 strerror(errno));
	/* there is no way back */
	if (setuid(0) == 0 || geteuid() == 0)
		return TDC_FAIL(e, TDC_E_INTERNAL, "privileges could be regained");
	rep->uid = (unsigned)pw->pw_uid;
	rep->gid = (unsigned)gid;
	rep->dropped = true;
	return 0;
}

/* ---- 3. Landlock ---- */

static int landlock(struct kbs_sandbox_report *rep, struct tdc_error *e)
{
	long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1)
		return 0; /* not in this kernel */
	uint64_t fs = (1ULL << 13) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */
	if (abi >= 2)
		fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		fs |= ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		fs |= ACCESS_FS_IOCTL_DEV;
	struct landlock_ruleset_attr attr = { .handled_access_fs = fs };
	int rs = (int)syscall(__NR_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rs < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create a Landlock ruleset", "%s",
				 strerror(errno));
	/* read-only: resolver configuration, trust stores, libraries (NSS modules) */
	static const char *const ro[] = {
		"/etc/resolv.conf", "/etc/hosts",	  "/etc/nsswitch.conf", "/etc/host.conf",
		"/etc/gai.conf",	  "/etc/services", "/etc/ssl",		  "/usr/lib/ssl",
		"/usr/share/ca-certificates", "/usr/lib", "/lib",		  "/lib64",
		"/dev/urandom",	  "/dev/null",
	};
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
		int fd = open(ro[i], O_PATH | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct landlock_path_beneath_attr pb = {
			.allowed_access = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR,
			.parent_fd = fd,
		};
		/* a file takes file rights only */
		struct stat st;
		if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
			pb.allowed_access = LANDLOCK_ACCESS_FS_READ_FILE;
		long r = syscall(__NR_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
		close(fd);
		if (r < 0) {
			close(rs);
			return TDC_FAILF(e, TDC_E_IO, "cannot add a Landlock rule", "%s: %s", ro[i],
					 strerror(errno));
		}
	}
	long r = syscall(__NR_landlock_restrict_self, rs, 0);
	close(rs);
	if (r < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot enter the Landlock domain", "%s",
				 strerror(errno));
	rep->landlock_abi = (int)abi;
	return 0;
}

/* ---- 4. seccomp ---- */

static int seccomp(struct kbs_sandbox_report *rep, struct tdc_error *e)
{
	/* what is not listed fails with EPERM; what would be an attack kills the process */
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!f)
		return TDC_FAIL(e, TDC_E_NOMEM, "cannot create a seccomp filter");
	static const int allow[] = {
		SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
		SCMP_SYS(pread64), SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
		SCMP_SYS(statx), SCMP_SYS(lseek), SCMP_SYS(mmap), SCMP_SYS(munmap),
		SCMP_SYS(mprotect), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(brk),
		SCMP_SYS(mlock), SCMP_SYS(munlock), SCMP_SYS(rt_sigaction),
		SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack),
		SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(exit),
		SCMP_SYS(exit_group), SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(tgkill),
		SCMP_SYS(getrandom), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
		SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday),
		SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
		SCMP_SYS(eventfd2), SCMP_SYS(accept4), SCMP_SYS(connect), SCMP_SYS(bind),
		SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(getsockname),
		SCMP_SYS(getpeername), SCMP_SYS(sendto), SCMP_SYS(recvfrom), SCMP_SYS(sendmsg),
		SCMP_SYS(recvmsg), SCMP_SYS(sendmmsg), SCMP_SYS(shutdown), SCMP_SYS(poll),
		SCMP_SYS(ppoll), SCMP_SYS(fcntl), SCMP_SYS(dup), SCMP_SYS(dup3),
		SCMP_SYS(pipe2), SCMP_SYS(getdents64), SCMP_SYS(uname),
		SCMP_SYS(sched_getaffinity), SCMP_SYS(sched_yield), SCMP_SYS(prlimit64),
		SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
		SCMP_SYS(sysinfo), SCMP_SYS(restart_syscall), SCMP_SYS(faccessat),
		SCMP_SYS(faccessat2), SCMP_SYS(access), SCMP_SYS(readlink), SCMP_SYS(membarrier),
	};
	static const int kill[] = {
		SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(ptrace),
		SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev), SCMP_SYS(mount),
		SCMP_SYS(umount2), SCMP_SYS(pivot_root), SCMP_SYS(chroot), SCMP_SYS(setns),
		SCMP_SYS(unshare), SCMP_SYS(kexec_load), SCMP_SYS(init_module),
		SCMP_SYS(finit_module), SCMP_SYS(bpf), SCMP_SYS(keyctl), SCMP_SYS(add_key),
		SCMP_SYS(request_key), SCMP_SYS(perf_event_open), SCMP_SYS(userfaultfd),
		SCMP_SYS(open_by_handle_at), SCMP_SYS(listen), SCMP_SYS(fork), SCMP_SYS(vfork),
	};
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(allow) / sizeof(allow[0]); i++)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, allow[i], 0);
	for (size_t i = 0; rc == 0 && i < sizeof(kill) / sizeof(kill[0]); i++)
		rc = seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, kill[i], 0);
	/* files: for reading only */
	const scmp_datum_t wr = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | O_TMPFILE;
	if (rc == 0)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, wr, O_RDONLY));
	if (rc == 0)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(open), 1,
				      SCMP_A1(SCMP_CMP_MASKED_EQ, wr, O_RDONLY));
	/* threads, not processes: clone only with CLONE_THREAD; clone3's flags are out of
	 * reach of a filter, so it says ENOSYS and glibc falls back to clone */
	if (rc == 0)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (rc == 0)
		rc = seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
	if (rc == 0)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* sockets for the PCCS (IP) and name resolution (netlink); no new UNIX sockets */
	static const int domains[] = { AF_INET, AF_INET6, AF_NETLINK };
	for (size_t i = 0; rc == 0 && i < sizeof(domains) / sizeof(domains[0]); i++)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)domains[i], 0));
	/* ioctl: the few a TLS client and stdio use */
	static const unsigned long ioctls[] = { FIONREAD, FIONBIO, TCGETS };
	for (size_t i = 0; rc == 0 && i < sizeof(ioctls) / sizeof(ioctls[0]); i++)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				      SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)ioctls[i], 0));
	if (rc == 0)
		rc = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc == 0)
		rc = seccomp_load(f);
	seccomp_release(f);
	if (rc < 0)
		return TDC_FAILF(e, TDC_E_INTERNAL, "cannot load the seccomp filter", "%s",
				 strerror(-rc));
	rep->seccomp = true;
	return 0;
}

/* ---- 5. the check ---- */

static bool opens(const char *path, char *what, size_t cap)
{
	if (!path || !*path) {
		snprintf(what, cap, "-");
		return false;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		snprintf(what, cap, "OPENS");
		return true;
	}
	snprintf(what, cap, "%s", errno == EACCES ? "EACCES" : errno == EPERM ? "EPERM"
								     : strerror(errno));
	return false;
}

int kbs_sandbox_enter(const char *user, const char *store, const char *master_key,
		      struct kbs_sandbox_report *rep, struct tdc_error *e)
{
	memset(rep, 0, sizeof(*rep));
	/* name resolution reads its configuration once while it still can */
	struct addrinfo *ai = NULL;
	if (getaddrinfo("localhost", NULL, NULL, &ai) == 0)
		freeaddrinfo(ai);
	TDC_GUARD(drop_user(user, rep, e));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot set no_new_privs", "%s", strerror(errno));
	rep->no_new_privs = true;
	if (!SANITIZER_BUILD) {
		TDC_GUARD(landlock(rep, e));
		TDC_GUARD(seccomp(rep, e));
	}
	bool s = opens(store, rep->store, sizeof(rep->store));
	bool m = opens(master_key, rep->master_key, sizeof(rep->master_key));
	if (s || m)
		return TDC_FAILF(e, TDC_E_USAGE, "the network process could open the store or the "
				 "master key",
				 "%s%s%s: run tdcrypt-kbs as root (the network process drops to "
				 "--user) or on a kernel with Landlock",
				 s ? store : "", s && m ? " and " : "", m ? master_key : "");
	return 0;
}
