// Package archive reads and writes image archives: the tar files that
// `docker save` / `docker load` exchange (docker-archive, old `<id>/layer.tar`
// layout and Docker 25's `blobs/sha256` layout), OCI image-layout archives
// (oci-archive) and OCI image-layout directories.
//
// It owns the archive formats only. Blobs go into a content.Store; this
// package never registers image names: Load and ReadLayout return the
// manifests they verified together with their names, and the caller records
// them. It is unrelated to storage/archive, which applies layer tars to a
// filesystem, and imports neither storage nor the engine.
//
// Loading is streaming: the archive (gzip, zstd, bzip2 or plain) is read
// once, in order; every file entry goes into the store as it passes, its
// digest computed while it is written. Metadata (manifest.json, index.json)
// usually comes last, so entries are recorded by path and the manifests are
// built and verified at the end. A blob is only ever committed verified
// (its digest checked by the store), and no manifest is returned unless its
// config, layers and diff_ids all check out.
//
// Saving streams blobs from the store into the tar. Both formats carry an
// OCI layout (oci-layout, index.json, blobs/sha256) and a Docker
// manifest.json, the layout Docker ≥25 writes, so old and new loaders accept
// either. FormatDocker writes uncompressed layer tars whose digests are the
// config's diff_ids (what `docker save` writes; compressed layers are
// decompressed on the fly); FormatOCI keeps layers as stored.
package archive
