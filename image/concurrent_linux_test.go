package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
	"github.com/berth-project/berth/storage/snapshot"
)

// TestConcurrentRegisterUnpack has several store instances on one root
// (as several berth processes would be) write, register and unpack the
// same image at once: all succeed, each layer is committed once.
func TestConcurrentRegisterUnpack(t *testing.T) {
	testutil.RequireRoot(t, "it unpacks images into snapshots")
	root := tempRoot(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := openAt(t, root, "overlay", Options{})
			imgs := registerSharedErr(t, s)
			_, err := s.Unpack(ctx, imgs)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	s := openAt(t, root, "overlay", Options{})
	img, err := s.Get(ctx, "layers:1")
	if err != nil {
		t.Fatal(err)
	}
	if got := committedLayers(t, s); len(got) != 4 {
		t.Errorf("%d committed layers, want 4: %v", len(got), got)
	}
	checkLayersImage(t, mountImage(t, s, img))
}

func registerSharedErr(t testing.TB, s *Service) *Image {
	layout := sharedLayout(t)
	copyBlobs(t, s, layout)
	img, err := s.Register(ctx, layoutManifests(t, layout)["layers:1"], []string{"layers:1"})
	if err != nil {
		t.Error(err)
		return nil
	}
	return img
}

// childMain runs in a re-executed test binary: BERTH_IMAGE_CHILD says
// what to do on the root BERTH_IMAGE_ROOT.
func childMain(t *testing.T) bool {
	action := os.Getenv("BERTH_IMAGE_CHILD")
	if action == "" {
		return false
	}
	s := openAt(t, os.Getenv("BERTH_IMAGE_ROOT"), "overlay", Options{})
	layout := sharedLayout(t)
	m := layoutManifests(t, layout)
	switch action {
	case "register-unpack":
		copyBlobs(t, s, layout)
		img, err := s.Register(ctx, m["layers:1"], []string{"layers:1"})
		if err == nil {
			_, err = s.Unpack(ctx, img)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	case "unpack-web":
		img, err := s.Get(ctx, "web:1")
		if err == nil {
			fmt.Println("started")
			_, err = s.Unpack(ctx, img)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	t.Fatalf("unknown child action %q", action)
	return true
}

func child(t *testing.T, root, action string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestProcesses$")
	cmd.Env = append(os.Environ(), "BERTH_IMAGE_CHILD="+action, "BERTH_IMAGE_ROOT="+root)
	return cmd
}

func TestProcesses(t *testing.T) {
	if childMain(t) {
		return
	}
	t.Run("concurrent", func(t *testing.T) {
		testutil.RequireRoot(t, "it unpacks images into snapshots")
		root := tempRoot(t)
		var cmds []*exec.Cmd
		var outs []*strings.Builder
		for range 3 {
			cmd := child(t, root, "register-unpack")
			out := &strings.Builder{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
			outs = append(outs, out)
		}
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Errorf("process %d: %v: %s", i, err, outs[i])
			}
		}
		s := openAt(t, root, "overlay", Options{})
		img, err := s.Get(ctx, "layers:1")
		if err != nil {
			t.Fatal(err)
		}
		if got := committedLayers(t, s); len(got) != 4 {
			t.Errorf("%d committed layers, want 4", len(got))
		}
		checkLayersImage(t, mountImage(t, s, img))
	})
	// kill -9 in the middle of unpacking: the next unpack completes and
	// garbage collection removes what the killed one left.
	t.Run("killed-unpack", func(t *testing.T) {
		testutil.RequireRoot(t, "it unpacks images into snapshots")
		root := tempRoot(t)
		s := openAt(t, root, "overlay", Options{})
		registerShared(t, s, "web:1")
		for _, delay := range []time.Duration{300 * time.Millisecond, 1500 * time.Millisecond} {
			cmd := child(t, root, "unpack-web")
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 8)
			stdout.Read(buf)
			time.Sleep(delay)
			cmd.Process.Signal(syscall.SIGKILL)
			err := cmd.Wait()
			t.Logf("child killed after %v: %v", delay, err)
		}
		temps := 0
		s.Snapshotter().Walk(func(i snapshot.Info) error {
			if strings.HasPrefix(i.Key, unpackPrefix) {
				temps++
			}
			return nil
		})
		t.Logf("%d temporary snapshots left by the killed processes", temps)
		rep, err := s.GC(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		img, err := s.Get(ctx, "web:1")
		if err != nil {
			t.Fatal(err)
		}
		// The blobs of the other images (copied, not registered) go; web's stay.
		if len(rep.Blobs) != 16-1-1-len(img.Layers) {
			t.Errorf("GC removed %d blobs: %v", len(rep.Blobs), rep.Blobs)
		}
		for _, l := range append(img.Layers, img.Manifest, img.ConfigDescriptor) {
			if _, err := s.Content().Info(ctx, l.Digest); err != nil {
				t.Errorf("blob of a registered image: %v", err)
			}
		}
		s.Snapshotter().Walk(func(i snapshot.Info) error {
			if strings.HasPrefix(i.Key, unpackPrefix) {
				t.Errorf("GC left %s", i.Key)
			}
			return nil
		})
		if _, err := s.Unpack(ctx, img); err != nil {
			t.Fatal(err)
		}
		if got := committedLayers(t, s); len(got) != 4 {
			t.Errorf("%d committed layers, want 4", len(got))
		}
		root2 := mountImage(t, s, img)
		if got := strings.TrimSpace(readFile(t, root2+"/var/www/html/index.html")); got != "<h1>served from a container</h1>" {
			t.Errorf("index.html = %q", got)
		}
	})
}
