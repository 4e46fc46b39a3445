// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include "clinux.h"
#include <sched.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/vfs.h>

int clinux_enter_netns(int fd) { return setns(fd, CLONE_NEWNET); }

long clinux_fs_magic(int fd)
{
	struct statfs fs;
	return fstatfs(fd, &fs) == 0 ? (long)fs.f_type : -1;
}

long clinux_fs_magic_at(const char *path)
{
	struct statfs fs;
	return statfs(path, &fs) == 0 ? (long)fs.f_type : -1;
}

int clinux_mount_bpffs(const char *path) { return mount("bpf", path, "bpf", 0, "mode=0700"); }

int clinux_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int clinux_is_network_namespace(int fd)
{
	int type = ioctl(fd, NS_GET_NSTYPE);

	return type < 0 ? -1 : type == CLONE_NEWNET;
}

pid_t clinux_spawn(const char *path, char *const argv[], char *const envp[], int stdin_fd, int stdout_fd, int close_fd)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid != 0)
		return pid < 0 ? -errno : pid;
	/* The child: only async-signal-safe calls from here to execve. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(127);
	if (dup2(stdin_fd, 0) < 0 || dup2(stdout_fd, 1) < 0)
		_exit(127);
	close(close_fd);
	execve(path, argv, envp);
	_exit(127);
}
