// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <linux/magic.h>   // BPF_FS_MAGIC, NSFS_MAGIC, CGROUP2_SUPER_MAGIC: what statfs says a filesystem is
// The few Linux calls that Glibc's Swift overlay does not import (they need _GNU_SOURCE).

/// setns(fd, CLONE_NEWNET): moves the calling thread into the network namespace behind fd.
int clinux_enter_netns(int fd);

/// The f_type of the filesystem holding fd (statfs(2) magic), or -1 with errno set.
long clinux_fs_magic(int fd);

/// The f_type of the filesystem holding path, or -1 with errno set.
long clinux_fs_magic_at(const char *path);

/// mount(2) of a bpf filesystem at path.
int clinux_mount_bpffs(const char *path);

/// memfd_create(name, MFD_CLOEXEC).
int clinux_memfd(const char *name);

/// pipe2(ends, O_CLOEXEC): a pipe whose ends no program this process runs inherits.
int clinux_pipe_cloexec(int ends[2]);

/// Whether the nsfs file behind fd is a network namespace (NS_GET_NSTYPE): 1 yes, 0 another
/// kind of namespace, -1 with errno set when fd is no namespace at all.
int clinux_is_network_namespace(int fd);
