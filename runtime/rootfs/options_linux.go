package rootfs

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// MountOptions is the kernel form of an OCI mount's options list.
type MountOptions struct {
	// Flags are the mount(2) flags to pass to the first mount call
	// (MS_BIND, MS_REC, MS_RDONLY, MS_NOSUID, ...).
	Flags uintptr
	// Cleared are the flags an option explicitly turned off (rw clears
	// MS_RDONLY, suid clears MS_NOSUID, ...). A remount that has to keep
	// flags the kernel locked must not silently re-add one of these.
	Cleared uintptr
	// Propagation holds one mount(2) flag set per propagation option
	// (MS_PRIVATE, MS_SHARED|MS_REC, ...), in the order given; each is
	// applied with its own mount call after the filesystem is mounted.
	Propagation []uintptr
	// RecAttr is non-nil when a recursive option (rro, rnosuid, ...) was
	// given; it is applied with mount_setattr(2) and AT_RECURSIVE.
	RecAttr *unix.MountAttr
	// Data is the comma-separated list of every option that is not a flag,
	// passed to the filesystem as mount(2) data (size=, mode=, lowerdir=...).
	Data string
	// CopyUp is set by the "tmpcopyup" option (a runc extension used by
	// podman): a tmpfs is filled with the contents of the directory it
	// covers.
	CopyUp bool
}

// flagOption is one entry of the mount(2) flag table: clear means the
// option removes the flag instead of adding it.
type flagOption struct {
	clear bool
	flag  uintptr
}

var flagOptions = map[string]flagOption{
	"defaults":      {false, 0},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"suid":          {true, unix.MS_NOSUID},
	"nosuid":        {false, unix.MS_NOSUID},
	"dev":           {true, unix.MS_NODEV},
	"nodev":         {false, unix.MS_NODEV},
	"exec":          {true, unix.MS_NOEXEC},
	"noexec":        {false, unix.MS_NOEXEC},
	"sync":          {false, unix.MS_SYNCHRONOUS},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"remount":       {false, unix.MS_REMOUNT},
	"mand":          {false, unix.MS_MANDLOCK},
	"nomand":        {true, unix.MS_MANDLOCK},
	"atime":         {true, unix.MS_NOATIME},
	"noatime":       {false, unix.MS_NOATIME},
	"diratime":      {true, unix.MS_NODIRATIME},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"relatime":      {false, unix.MS_RELATIME},
	"norelatime":    {true, unix.MS_RELATIME},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"bind":          {false, unix.MS_BIND},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"iversion":      {false, unix.MS_I_VERSION},
	"noiversion":    {true, unix.MS_I_VERSION},
	"silent":        {false, unix.MS_SILENT},
	"loud":          {true, unix.MS_SILENT},
}

var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// recursiveOptions are applied to a whole mount tree with mount_setattr(2).
var recursiveOptions = map[string]flagOption{
	"rro":            {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":            {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":        {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":          {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":         {false, unix.MOUNT_ATTR_NODEV},
	"rdev":           {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":        {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":          {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":    {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":      {true, unix.MOUNT_ATTR_NODIRATIME},
	"rrelatime":      {false, unix.MOUNT_ATTR_RELATIME},
	"rnorelatime":    {true, unix.MOUNT_ATTR_RELATIME},
	"rnoatime":       {false, unix.MOUNT_ATTR_NOATIME},
	"ratime":         {true, unix.MOUNT_ATTR_NOATIME},
	"rstrictatime":   {false, unix.MOUNT_ATTR_STRICTATIME},
	"rnostrictatime": {true, unix.MOUNT_ATTR_STRICTATIME},
	"rnosymfollow":   {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":     {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// atimeAttrs are the values of the MOUNT_ATTR__ATIME field of mount_setattr:
// one of them is chosen, not OR'ed.
const atimeAttrs = unix.MOUNT_ATTR_RELATIME | unix.MOUNT_ATTR_NOATIME | unix.MOUNT_ATTR_STRICTATIME

// noAtimeChoice marks that no recursive atime option was given.
const noAtimeChoice = -1

// recursiveAtime folds one recursive atime option into the current choice of
// MOUNT_ATTR_{RELATIME,NOATIME,STRICTATIME} (noAtimeChoice when none yet).
// The "negative" options undo their positive form, falling back to the
// kernel's default, relatime; rnorelatime asks for strict atime.
func recursiveAtime(cur int, opt string) int {
	switch opt {
	case "rrelatime":
		return unix.MOUNT_ATTR_RELATIME
	case "rnoatime":
		return unix.MOUNT_ATTR_NOATIME
	case "rstrictatime":
		return unix.MOUNT_ATTR_STRICTATIME
	case "ratime":
		if cur == unix.MOUNT_ATTR_NOATIME || cur == noAtimeChoice {
			return unix.MOUNT_ATTR_RELATIME
		}
	case "rnostrictatime":
		if cur == unix.MOUNT_ATTR_STRICTATIME || cur == noAtimeChoice {
			return unix.MOUNT_ATTR_RELATIME
		}
	case "rnorelatime":
		if cur == unix.MOUNT_ATTR_RELATIME || cur == noAtimeChoice {
			return unix.MOUNT_ATTR_STRICTATIME
		}
	}
	return cur
}

// ParseMountOptions turns an OCI mount's options into mount(2) flags,
// propagation changes, mount_setattr(2) attributes and filesystem data.
// Options are applied left to right, so a later "rw" undoes an earlier "ro".
// Anything it does not know is filesystem data. It is pure: no system calls.
func ParseMountOptions(opts []string) MountOptions {
	var (
		o              MountOptions
		data           []string
		recSet, recClr uint64
		haveRec        bool
		atime          = noAtimeChoice
	)
	for _, opt := range opts {
		if f, ok := flagOptions[opt]; ok {
			if f.clear {
				o.Flags &^= f.flag
				o.Cleared |= f.flag
			} else {
				o.Flags |= f.flag
				o.Cleared &^= f.flag
			}
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.Propagation = append(o.Propagation, p)
			continue
		}
		if r, ok := recursiveOptions[opt]; ok {
			haveRec = true
			if r.flag == unix.MOUNT_ATTR_RELATIME || r.flag&atimeAttrs != 0 {
				atime = recursiveAtime(atime, opt)
				continue
			}
			if r.clear {
				recSet &^= uint64(r.flag)
				recClr |= uint64(r.flag)
			} else {
				recSet |= uint64(r.flag)
				recClr &^= uint64(r.flag)
			}
			continue
		}
		if opt == "tmpcopyup" {
			o.CopyUp = true
			continue
		}
		if opt == "" {
			continue
		}
		data = append(data, opt)
	}
	if atime != noAtimeChoice {
		// mount_setattr(2): the atime field is one value, selected by
		// putting it in attr_set and the whole field in attr_clr.
		recSet |= uint64(atime)
		recClr |= unix.MOUNT_ATTR__ATIME
	}
	if haveRec {
		o.RecAttr = &unix.MountAttr{Attr_set: recSet, Attr_clr: recClr}
	}
	o.Data = strings.Join(data, ",")
	return o
}

// ParsePropagation maps an OCI rootfsPropagation value to mount(2) flags.
// The empty string means the runtime default, MS_SLAVE|MS_REC.
func ParsePropagation(s string) (uintptr, error) {
	if s == "" {
		return unix.MS_SLAVE | unix.MS_REC, nil
	}
	p, ok := propagationOptions[s]
	if !ok {
		return 0, fmt.Errorf("rootfs propagation %q: not one of private, rprivate, shared, rshared, slave, rslave, unbindable, runbindable", s)
	}
	return p, nil
}

// stNoSymFollow is statfs(2)'s ST_NOSYMFOLLOW, missing from x/sys/unix.
const stNoSymFollow = 0x2000

// atimeFlags are the mount flags that make up a mount's atime setting.
const atimeFlags = unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME

// statfsToMountFlags converts statfs(2) f_flags (ST_*) into the mount(2)
// flags (MS_*) describing the same per-mount state. The two bit sets only
// partly coincide (ST_RELATIME is MS_BIND's value), so never OR raw f_flags
// into mount flags.
func statfsToMountFlags(st int64) uintptr {
	var f uintptr
	for _, m := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_SYNCHRONOUS, unix.MS_SYNCHRONOUS},
		{unix.ST_MANDLOCK, unix.MS_MANDLOCK},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
		{stNoSymFollow, unix.MS_NOSYMFOLLOW},
	} {
		if st&m.st != 0 {
			f |= m.ms
		}
	}
	if f&(unix.MS_NOATIME|unix.MS_RELATIME) == 0 {
		// Neither noatime nor relatime: the mount uses strict atime, and a
		// remount without any atime flag would switch it to relatime.
		f |= unix.MS_STRICTATIME
	}
	return f
}

// keepLockedFlags returns the remount flags `want` extended with the flags
// the mount currently has (cur, from statfsToMountFlags) that the kernel may
// have locked. It fails when the caller explicitly asked to clear one of them
// (cleared), or asked for a different atime setting than a possibly locked
// one, since the kernel would refuse that anyway.
func keepLockedFlags(want, cleared, cur uintptr) (uintptr, error) {
	locked := cur & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if c := cleared & locked; c != 0 {
		return 0, fmt.Errorf("mount has %s locked by the kernel and the options ask to clear it", flagNames(c))
	}
	if want&atimeFlags != 0 && want&atimeFlags != cur&atimeFlags {
		return 0, fmt.Errorf("mount's atime setting (%s) may be locked by the kernel and the options ask for %s", flagNames(cur&atimeFlags), flagNames(want&atimeFlags))
	}
	if want&atimeFlags == 0 {
		want |= cur & atimeFlags
	}
	return want | locked, nil
}

// flagNames renders mount flags for error messages.
func flagNames(f uintptr) string {
	var names []string
	for _, n := range []struct {
		f    uintptr
		name string
	}{
		{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"},
		{unix.MS_NOEXEC, "noexec"}, {unix.MS_NOATIME, "noatime"}, {unix.MS_NODIRATIME, "nodiratime"},
		{unix.MS_RELATIME, "relatime"}, {unix.MS_STRICTATIME, "strictatime"},
		{unix.MS_NOSYMFOLLOW, "nosymfollow"},
	} {
		if f&n.f != 0 {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("%#x", f)
	}
	return strings.Join(names, ",")
}
