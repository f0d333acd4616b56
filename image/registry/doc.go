// Package registry is berth's client for the Docker Registry HTTP API v2 (the
// OCI distribution API): Pull and Push of images between a registry and a
// content store, Login, and Docker-compatible credential storage
// (config.json).
//
// Authentication (anonymous, basic, and bearer tokens obtained through the
// WWW-Authenticate challenge) is done by go-containerregistry's transport;
// credentials come from a Keychain, by default Docker's (config.json with
// its auths, credHelpers and credsStore, under $DOCKER_CONFIG or ~/.docker).
//
// Pull writes every blob through content.Store.Writer, so each byte is
// checked against the digest and size the manifest names before the blob
// becomes visible. A pull that dies midway leaves partial ingests in the
// store; the next pull resumes each of them with an HTTP Range request and
// does not fetch committed blobs again. The manifest, index and config of an
// image are committed only after all its layers, so an image whose
// top-level manifest is in the store is complete.
//
// Push uploads what the registry lacks (checked with HEAD), mounting blobs
// from another repository of the same registry when a source database
// records that the blob came from there (see SourceDB), then puts the
// manifest.
package registry
