package archive

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// WhiteoutMode says how Apply treats OCI whiteout entries.
type WhiteoutMode int

const (
	// WhiteoutDelete applies a layer onto a merged tree holding every
	// lower layer (the vfs driver): a whiteout removes what it names and
	// an opaque marker removes the lower contents of its directory.
	WhiteoutDelete WhiteoutMode = iota
	// WhiteoutOverlay applies a layer into an empty overlayfs upper (or
	// layer) directory: whiteouts become 0/0 character devices and opaque
	// markers an overlay "opaque" xattr on the directory.
	WhiteoutOverlay
)

// ApplyOptions tune Apply. The zero value applies onto a merged tree,
// keeps ownership as in the tar and creates device nodes.
type ApplyOptions struct {
	// Whiteouts selects how whiteouts and opaque markers are applied.
	Whiteouts WhiteoutMode
	// UserXattr makes WhiteoutOverlay mark opaque directories with
	// user.overlay.opaque (overlayfs mounted with "userxattr", as in
	// rootless mode) instead of trusted.overlay.opaque.
	UserXattr bool
	// SkipDevices skips character and block device entries (rootless
	// unpacking cannot create them). FIFOs are still created.
	SkipDevices bool
	// IDMap maps the tar's uids and gids (container IDs) to host IDs. Nil
	// keeps them as they are.
	IDMap *IDMap
}

// DiffOptions tune WriteDiff and WriteOverlayDiff.
type DiffOptions struct {
	// IDMap maps host uids and gids back to container IDs in the tar. An
	// ID it does not map is written as OverflowID, as the kernel shows it
	// inside the user namespace.
	IDMap *IDMap
}

// OverflowID is the ID a user namespace shows for a host ID it does not
// map (the kernel's default overflowuid and overflowgid).
const OverflowID = 65534

// IDMap maps container user and group IDs to host IDs, as a user
// namespace does.
type IDMap struct {
	UIDs []specs.LinuxIDMapping
	GIDs []specs.LinuxIDMapping
}

// ToHost maps a container uid and gid to host IDs.
func (m *IDMap) ToHost(uid, gid int) (int, int, error) {
	if m == nil {
		return uid, gid, nil
	}
	hu, err := mapID(m.UIDs, uid, true)
	if err != nil {
		return 0, 0, fmt.Errorf("uid %d: %w", uid, err)
	}
	hg, err := mapID(m.GIDs, gid, true)
	if err != nil {
		return 0, 0, fmt.Errorf("gid %d: %w", gid, err)
	}
	return hu, hg, nil
}

// ToContainer maps a host uid and gid back to container IDs.
func (m *IDMap) ToContainer(uid, gid int) (int, int, error) {
	if m == nil {
		return uid, gid, nil
	}
	cu, err := mapID(m.UIDs, uid, false)
	if err != nil {
		return 0, 0, fmt.Errorf("uid %d: %w", uid, err)
	}
	cg, err := mapID(m.GIDs, gid, false)
	if err != nil {
		return 0, 0, fmt.Errorf("gid %d: %w", gid, err)
	}
	return cu, cg, nil
}

// toContainerOrOverflow is ToContainer with unmapped IDs as OverflowID.
func (m *IDMap) toContainerOrOverflow(uid, gid int) (int, int) {
	if m == nil {
		return uid, gid
	}
	cu, err := mapID(m.UIDs, uid, false)
	if err != nil {
		cu = OverflowID
	}
	cg, err := mapID(m.GIDs, gid, false)
	if err != nil {
		cg = OverflowID
	}
	return cu, cg
}

func mapID(ms []specs.LinuxIDMapping, id int, toHost bool) (int, error) {
	if id < 0 {
		return 0, fmt.Errorf("negative id")
	}
	for _, m := range ms {
		from, to := int64(m.ContainerID), int64(m.HostID)
		if !toHost {
			from, to = to, from
		}
		if int64(id) >= from && int64(id) < from+int64(m.Size) {
			return int(to + int64(id) - from), nil
		}
	}
	return 0, fmt.Errorf("not in the id map")
}
