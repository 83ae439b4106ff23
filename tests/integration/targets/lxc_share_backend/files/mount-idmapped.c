/*
 * A small stand-in for brauner's mount-idmapped, written for lxcex.share's
 * tests: the same command line (--map-mount KIND:FROM:TO:COUNT ... SRC DST)
 * and the same kernel calls (a user namespace carrying the map, open_tree,
 * mount_setattr(MOUNT_ATTR_IDMAP), move_mount).  It lets the tests build
 * and use the mount-idmapped backend on a machine that cannot download the
 * real program.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define OPEN_TREE_CLONE_ 1
#define MOVE_MOUNT_F_EMPTY_PATH_ 0x4
#define AT_EMPTY_PATH_ 0x1000
#define MOUNT_ATTR_IDMAP_ 0x00100000

struct attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: mount-idmapped [--map-mount KIND:FROM:TO:COUNT]... SRC DST\n");
	exit(2);
}

static void write_map(pid_t pid, const char *name, const char *map)
{
	char path[64];
	int fd;

	if (!*map)
		return;
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, map, strlen(map)) != (ssize_t)strlen(map))
		die(path);
	close(fd);
}

int main(int argc, char **argv)
{
	char umap[16384] = "", gmap[16384] = "", line[96], c;
	int i, ready[2], go[2], userns, tree;
	struct attr attr = {0};
	pid_t pid;

	if (argc < 3)
		usage();
	for (i = 1; i < argc - 2; i++) {
		char kind;
		unsigned long from, to, count;

		if (strcmp(argv[i], "--map-mount") || i + 1 >= argc - 2)
			usage();
		if (sscanf(argv[++i], "%c:%lu:%lu:%lu", &kind, &from, &to, &count) != 4)
			usage();
		snprintf(line, sizeof(line), "%lu %lu %lu\n", from, to, count);
		if (kind == 'u' || kind == 'b')
			strncat(umap, line, sizeof(umap) - strlen(umap) - 1);
		if (kind == 'g' || kind == 'b')
			strncat(gmap, line, sizeof(gmap) - strlen(gmap) - 1);
		if (kind != 'u' && kind != 'g' && kind != 'b')
			usage();
	}
	if (pipe(ready) || pipe(go))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (unshare(CLONE_NEWUSER))
			_exit(1);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	if (read(ready[0], &c, 1) != 1)
		die("unshare(CLONE_NEWUSER)");
	write_map(pid, "uid_map", umap);
	write_map(pid, "gid_map", gmap);
	snprintf(line, sizeof(line), "/proc/%d/ns/user", (int)pid);
	userns = open(line, O_RDONLY | O_CLOEXEC);
	if (userns < 0)
		die(line);
	if (write(go[1], "g", 1) != 1)
		die("write");
	waitpid(pid, NULL, 0);

	tree = syscall(SYS_open_tree, AT_FDCWD, argv[argc - 2], OPEN_TREE_CLONE_ | O_CLOEXEC);
	if (tree < 0)
		die("open_tree");
	attr.attr_set = MOUNT_ATTR_IDMAP_;
	attr.userns_fd = userns;
	if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH_, &attr, sizeof(attr)))
		die("mount_setattr");
	if (syscall(SYS_move_mount, tree, "", AT_FDCWD, argv[argc - 1], MOVE_MOUNT_F_EMPTY_PATH_))
		die("move_mount");
	return 0;
}
