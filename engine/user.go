package engine

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// resolveUser turns Docker's --user (name|uid[:group|gid]) and --group-add
// into ids, reading the container's /etc/passwd and /etc/group inside its
// root filesystem without following symlinks out of it.
func resolveUser(rootfs, user string, groupAdd []string) (resolvedUser, error) {
	var u resolvedUser
	passwd, err := readDB(rootfs, "/etc/passwd")
	if err != nil {
		return u, err
	}
	groups, err := readDB(rootfs, "/etc/group")
	if err != nil {
		return u, err
	}
	name, group, hasGroup := strings.Cut(user, ":")
	if name == "" {
		name = "0"
	}
	uname := ""
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		u.UID = uint32(id)
		u.GID = u.UID
		for _, f := range passwd {
			if len(f) >= 6 && f[2] == name {
				uname = f[0]
				if g, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					u.GID = uint32(g)
				}
				u.Home = f[5]
				break
			}
		}
		if uname == "" && !hasGroup {
			u.GID = 0
			if u.UID == 0 {
				u.Home = "/root"
			}
		}
	} else {
		found := false
		for _, f := range passwd {
			if len(f) >= 6 && f[0] == name {
				uid, err1 := strconv.ParseUint(f[2], 10, 32)
				gid, err2 := strconv.ParseUint(f[3], 10, 32)
				if err1 != nil || err2 != nil {
					return u, fmt.Errorf("user %q: bad entry in the container's /etc/passwd", name)
				}
				u.UID, u.GID, u.Home, uname, found = uint32(uid), uint32(gid), f[5], name, true
				break
			}
		}
		if !found {
			return u, fmt.Errorf("unable to find user %s: no matching entries in the container's /etc/passwd", name)
		}
	}
	if hasGroup {
		gid, err := lookupGroup(groups, group)
		if err != nil {
			return u, err
		}
		u.GID = gid
	}
	// Supplementary groups: the user's memberships, then --group-add.
	seen := map[uint32]bool{u.GID: true}
	if uname != "" {
		for _, f := range groups {
			if len(f) < 4 {
				continue
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == uname {
					if g, err := strconv.ParseUint(f[2], 10, 32); err == nil && !seen[uint32(g)] {
						seen[uint32(g)] = true
						u.Additional = append(u.Additional, uint32(g))
					}
				}
			}
		}
	}
	for _, g := range groupAdd {
		gid, err := lookupGroup(groups, g)
		if err != nil {
			return u, fmt.Errorf("--group-add: %w", err)
		}
		if !seen[gid] {
			seen[gid] = true
			u.Additional = append(u.Additional, gid)
		}
	}
	return u, nil
}

func lookupGroup(groups [][]string, g string) (uint32, error) {
	if id, err := strconv.ParseUint(g, 10, 32); err == nil {
		return uint32(id), nil
	}
	for _, f := range groups {
		if len(f) >= 3 && f[0] == g {
			id, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil {
				return 0, fmt.Errorf("group %q: bad entry in the container's /etc/group", g)
			}
			return uint32(id), nil
		}
	}
	return 0, fmt.Errorf("unable to find group %s: no matching entries in the container's /etc/group", g)
}

// readDB reads a colon-separated file of the container; a missing file is
// empty.
func readDB(rootfs, name string) ([][]string, error) {
	f, err := openInRoot(rootfs, name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the container's %s: %w", name, err)
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, sc.Err()
}

// mkdirInRoot makes dir (and its parents) inside rootfs, owned by uid:gid
// when it is new, without following symlinks out of rootfs. With
// creator >= 0 (a remapped container's root, as a host uid and gid) the
// directories are made as that user: host root has no ID in the
// container's id-mapped root filesystem.
func mkdirInRoot(rootfs, dir string, uid, gid uint32, creatorUID, creatorGID int) error {
	if f, err := pathrs.OpenInRoot(rootfs, dir); err == nil {
		f.Close()
		return nil
	}
	if err := asFSUser(creatorUID, creatorGID, func() error { return pathrs.MkdirAll(rootfs, dir, 0o755) }); err != nil {
		return fmt.Errorf("create %s in the container: %w", dir, err)
	}
	f, err := pathrs.OpenInRoot(rootfs, dir)
	if err != nil {
		return err
	}
	defer f.Close()
	made, madeGID := max(creatorUID, 0), max(creatorGID, 0)
	if int(uid) != made || int(gid) != madeGID {
		// f is an O_PATH handle: chown it through AT_EMPTY_PATH.
		return unix.Fchownat(int(f.Fd()), "", int(uid), int(gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

// asFSUser runs fn on a thread whose filesystem uid and gid are uid and
// gid (unless negative); the thread ends with it.
func asFSUser(uid, gid int, fn func() error) error {
	if uid < 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the changed thread exits
		unix.Setfsgid(gid)
		unix.Setfsuid(uid)
		errc <- fn()
	}()
	return <-errc
}

var _ = os.Getpid

// openInRoot opens path inside root for reading without following
// symlinks out of root (pathrs gives an O_PATH handle; it is reopened).
func openInRoot(root, path string) (*os.File, error) {
	h, err := pathrs.OpenInRoot(root, path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
}
