package store

import "golang.org/x/sys/unix"

// fsTopdirFL is FS_TOPDIR_FL (chattr +T): the directory is the top of
// directory hierarchies for the Orlov allocator of ext2/3/4.
const fsTopdirFL = 0x00020000

// markTopdir sets FS_TOPDIR_FL on dir, best effort (filesystems without
// inode flags refuse it, and nothing depends on it).
//
// Each snapshot is a tree of its own, built and removed as a whole. With
// the flag, ext4 places every new snapshot directory (a random name) in a
// block group chosen afresh, as it does for top-level directories, instead
// of packing all of them next to snapshots/. That matters on ext4 without
// a journal, whose inode allocator skips the inodes freed in the last
// minutes one by one: creating a layer's thousands of files in the groups
// where the previous ones were just deleted costs seconds of system time.
func markTopdir(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsTopdirFL != 0 {
		return
	}
	unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFL))
}
