package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// busyboxPath is where Debian's busybox-static package installs its binary.
const busyboxPath = "/bin/busybox"

// makeRootfs fills dir with a minimal root filesystem: the static busybox
// binary, a symlink per applet in /bin, and the mount points the OCI spec
// from `runc spec` mounts on.
func makeRootfs(dir string) error {
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("make rootfs dir: %w", err)
		}
	}
	if err := isStaticELF(busyboxPath); err != nil {
		return fmt.Errorf("%s (install busybox-static): %w", busyboxPath, err)
	}
	if err := copyFile(busyboxPath, filepath.Join(bin, "busybox"), 0o755); err != nil {
		return err
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return fmt.Errorf("list busybox applets: %w", err)
	}
	applets := strings.Fields(string(out))
	applets = append(applets, "true", "sh") // the two the bench relies on
	for _, a := range applets {
		if a == "busybox" || strings.ContainsRune(a, '/') {
			continue
		}
		link := filepath.Join(bin, a)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink("busybox", link); err != nil {
			return fmt.Errorf("link applet %s: %w", a, err)
		}
	}
	return nil
}

// isStaticELF checks that path is an ELF file without a program interpreter,
// so it runs in a rootfs that has no dynamic loader.
func isStaticELF(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(b, []byte("\x7fELF")) {
		return fmt.Errorf("not an ELF binary")
	}
	if bytes.Contains(b, []byte("/lib64/ld-linux")) || bytes.Contains(b, []byte("/lib/ld-linux")) {
		return fmt.Errorf("dynamically linked")
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// writeSpec creates bundle/config.json with `<specTool> spec`, then points the
// process at args with no terminal. rootPath, when not empty, replaces
// root.path (used to share one rootfs between bundles).
func writeSpec(specTool, bundle string, args []string, rootPath string) error {
	cmd := exec.Command(specTool, "spec", "--bundle", bundle)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s spec: %w: %s", specTool, err, bytes.TrimSpace(out))
	}
	path := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read generated spec: %w", err)
	}
	// A generic map keeps every field the generator wrote, including ones
	// newer than any Go type this program might use.
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("parse generated spec: %w", err)
	}
	proc, ok := spec["process"].(map[string]any)
	if !ok {
		return fmt.Errorf("generated spec has no process object")
	}
	proc["args"] = args
	proc["terminal"] = false
	if rootPath != "" {
		root, ok := spec["root"].(map[string]any)
		if !ok {
			return fmt.Errorf("generated spec has no root object")
		}
		root["path"] = rootPath
	}
	out, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	return nil
}
