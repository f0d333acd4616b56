// Package archive owns berth's layer tar streams: applying an OCI/Docker
// layer (an uncompressed tar) onto a directory, and writing a layer tar
// from a directory diff.
//
// # Safety
//
// Applying a layer is the classic attack surface of an image store, so
// every path in the stream is resolved inside the destination directory:
// parent directories are opened with openat2(RESOLVE_IN_ROOT |
// RESOLVE_NO_MAGICLINKS) on a handle of the destination, so "..", absolute
// paths and symlinks (from this layer or from earlier ones) can never lead
// out of it, and the last component is always handled with *at system
// calls that do not follow symlinks (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW,
// fchmodat2). Hard links are made only to entries that resolve inside the
// destination. Ownership is numeric (tar user and group names are ignored)
// and can be remapped through an ID map; modes keep setuid, setgid and
// sticky bits; xattrs are kept, except overlayfs' own (trusted.overlay.*,
// user.overlay.*), which a layer must not smuggle into an upper directory.
// A truncated or corrupt stream is an error, including one cut exactly at
// an entry boundary (the end-of-archive marker is required).
//
// # Whiteouts
//
// OCI whiteouts (".wh.<name>" and the opaque marker ".wh..wh..opq") are
// applied in one of two ways, chosen by ApplyOptions.Whiteouts:
// WhiteoutDelete, for a merged tree such as the vfs driver's, removes what
// they hide from the lower layers; WhiteoutOverlay, for an overlayfs upper
// directory, turns them into overlayfs' own form (a 0/0 character device,
// and the trusted.overlay.opaque or user.overlay.opaque xattr). The reverse
// direction is WriteOverlayDiff (an upper directory back into a layer tar)
// and WriteDiff (the difference between two full trees, for vfs).
//
// It imports no other berth package; the image and storage packages call it.
package archive
