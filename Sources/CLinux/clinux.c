// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include "clinux.h"
#include <sched.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <fcntl.h>
#include <unistd.h>

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

int clinux_pipe_cloexec(int ends[2]) { return pipe2(ends, O_CLOEXEC); }

int clinux_is_network_namespace(int fd)
{
	int type = ioctl(fd, NS_GET_NSTYPE);

	return type < 0 ? -1 : type == CLONE_NEWNET;
}
