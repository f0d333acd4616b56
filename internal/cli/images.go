package cli

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/image/archive"
	"github.com/berth-project/berth/image/reference"
	"github.com/berth-project/berth/image/registry"
	"github.com/berth-project/berth/internal/atomicfile"
	"github.com/berth-project/berth/internal/progress"
)

func imageCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "image", Short: "Manage images"}
	ls := buildLikeImagesCmd(g)
	ls.Use, ls.Aliases = "ls [OPTIONS] [REPOSITORY[:TAG]]", []string{"list", "images"}
	rm := rmiCmd(g)
	rm.Use, rm.Aliases = "rm [OPTIONS] IMAGE [IMAGE...]", []string{"rmi", "remove"}
	c.AddCommand(ls, rm, pullCmd(g), pushCmd(g), tagCmd(g), inspectImageCmd(g), historyCmd(g), saveCmd(g), loadCmd(g), importCmd(g), imagePruneCmd(g))
	return c
}

func sourceDB(g *globals) registry.SourceDB {
	return registry.SourceDB(filepath.Join(g.root, "image", "sources.db"))
}

func isTTY(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// writeArchive has write write an archive (save, export) to the file
// output or, with none, to stdout unless that is a terminal. A file is
// replaced whole (atomicfile): no half-written archive is ever left
// under the name.
func writeArchive(output string, write func(io.Writer) error) error {
	if output == "" {
		if isTTY(os.Stdout) {
			return exitCode(1, errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect"))
		}
		return write(os.Stdout)
	}
	return atomicfile.Write(output, 0o644, false, func(f *os.File) error { return write(f) })
}

// ociSource splits "oci:DIR:REF" (an OCI image layout directory and the
// ref.name of an image in it); DIR is the longest prefix that is a layout.
func ociSource(s string) (dir, ref string, ok bool, err error) {
	rest, ok := strings.CutPrefix(s, "oci:")
	if !ok {
		return "", "", false, nil
	}
	for i := len(rest); i > 0; i-- {
		if i < len(rest) && rest[i] != ':' {
			continue
		}
		cand := rest[:i]
		if _, err := os.Stat(filepath.Join(cand, "oci-layout")); err == nil {
			return cand, strings.TrimPrefix(rest[i:], ":"), true, nil
		}
	}
	return "", "", true, fmt.Errorf("%s: no OCI image layout (a directory with an oci-layout file) found; use oci:DIR:NAME", s)
}

// pullImage pulls ref (a registry reference or oci:DIR:NAME) into the
// store, unpacks it and returns it.
func pullImage(ctx context.Context, g *globals, be *backend, ref, platform string, quiet bool, out *os.File) (*image.Image, error) {
	var pr progress.Reporter = progress.Discard
	var printer *progress.Printer
	if !quiet {
		printer = progress.NewPrinter(out, isTTY(out))
		pr = printer
		defer printer.Done()
	}
	var opts []image.RegisterOption
	var plat registry.PullOptions
	if platform != "" {
		p, err := registry.ParsePlatform(platform)
		if err != nil {
			return nil, err
		}
		plat.Platform = p
		opts = append(opts, image.WithPlatform(p))
	}
	// Hold off garbage collection from the first blob until the image is
	// registered.
	release, err := be.images.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var img *image.Image
	var staged *image.Stager
	if dir, layoutRef, ok, err := ociSource(ref); ok {
		if err != nil {
			return nil, err
		}
		loaded, err := archive.ReadLayout(ctx, dir, layoutRef, be.images.Content())
		if err != nil {
			return nil, err
		}
		if img, err = be.images.Register(ctx, loaded.Manifest, loaded.Names, opts...); err != nil {
			return nil, err
		}
	} else {
		r, err := reference.ParseDocker(ref)
		if err != nil {
			return nil, err
		}
		nref, err := name.ParseReference(r.String())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", reference.ErrInvalid, err)
		}
		if !quiet {
			fmt.Fprintf(out, "%s: Pulling from %s\n", tagOrDigest(r), r.Path)
		}
		plat.Progress = pr
		plat.SourceDB = sourceDB(g)
		plat.Insecure = g.insecure
		// Each layer is extracted while it downloads (Stager); Unpack
		// below places the staged layers on their parents once the pull
		// has verified every blob.
		st, err := be.images.NewStager(ctx)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		staged = st
		cs := be.images.Content()
		plat.LayerHook = func(desc ocispec.Descriptor, r io.Reader) error {
			if _, err := cs.Info(ctx, desc.Digest); err == nil {
				return nil // stored before: unpacked already, or from the store below
			}
			return st.Stage(ctx, desc.Digest, r)
		}
		res, err := registry.Pull(ctx, nref, cs, plat)
		if err != nil {
			return nil, err
		}
		top := res.Manifest
		if res.Index != nil {
			top = *res.Index
		}
		names := []string{r.String()}
		if r.Digest == "" {
			names = append(names, r.TrimNamed().WithDigest(res.Digest).String())
		}
		if img, err = be.images.Register(ctx, top, names, opts...); err != nil {
			return nil, err
		}
		if !quiet {
			if printer != nil {
				printer.Done()
			}
			fmt.Fprintf(out, "Digest: %s\n", res.Digest)
		}
	}
	if _, err := be.images.Unpack(ctx, img, image.WithProgress(pr), image.WithStaged(staged)); err != nil {
		return nil, err
	}
	return img, nil
}

func tagOrDigest(r reference.Reference) string {
	if r.Tag != "" {
		return r.Tag
	}
	return string(r.Digest)
}

// ensureImage applies run's --pull policy.
func ensureImage(ctx context.Context, g *globals, be *backend, ref, policy, platform string) error {
	switch policy {
	case "", "missing", "always", "never":
	default:
		return fmt.Errorf("invalid --pull %q: want always, missing or never", policy)
	}
	if strings.HasPrefix(ref, "oci:") {
		return fmt.Errorf("run needs an image name: load it first with `berth pull %s`", ref)
	}
	_, err := be.images.Get(ctx, ref)
	if err == nil && policy != "always" {
		return nil
	}
	if err != nil && !errors.Is(err, image.ErrNotFound) {
		return err
	}
	if policy == "never" {
		return fmt.Errorf("no such image: %s (and --pull never)", ref)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Unable to find image '%s' locally\n", ref)
	}
	_, err = pullImage(ctx, g, be, ref, platform, false, os.Stderr)
	return err
}

func pullCmd(g *globals) *cobra.Command {
	var quiet bool
	var platform string
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST] | oci:DIR:NAME",
		Short: "Download an image from a registry (or an OCI image layout directory)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := g.backend()
			if err != nil {
				return err
			}
			// What the name was before: "up to date" or "downloaded newer".
			var oldID string
			if old, err := be.images.Get(cmd.Context(), args[0]); err == nil {
				oldID = old.ID
			}
			img, err := pullImage(cmd.Context(), g, be, args[0], platform, quiet, os.Stdout)
			if err != nil {
				return err
			}
			// As docker pull: the reference pulled, in full (also alone
			// with -q); an OCI layout's image by its first name.
			name, full := firstTag(img), ""
			if r, err := reference.ParseDocker(args[0]); err == nil && !strings.HasPrefix(args[0], "oci:") {
				name, full = r.Familiar(), r.String()
			} else if len(img.RepoTags) > 0 {
				full = fullName(img.RepoTags[0])
			} else {
				full = img.ID
			}
			if !quiet {
				if oldID == img.ID {
					fmt.Printf("Status: Image is up to date for %s\n", name)
				} else {
					fmt.Printf("Status: Downloaded newer image for %s\n", name)
				}
			}
			fmt.Println(full)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.Flags().BoolVar(&g.insecure, "insecure", false, "Allow plain http and unverified TLS for this registry (localhost and 127.0.0.0/8 always may fall back to http)")
	cmd.Flags().StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	cmd.Flags().BoolP("all-tags", "a", false, "Download all tagged images in the repository (not supported)")
	return exit1(cmd)
}

func fullName(s string) string {
	if r, err := reference.Parse(s); err == nil {
		return r.String()
	}
	return s
}

func firstTag(img *image.Image) string {
	if len(img.RepoTags) > 0 {
		return img.RepoTags[0]
	}
	return img.ShortID()
}

func pushCmd(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := g.backend()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			img, err := be.images.Get(ctx, args[0])
			if err != nil {
				return err
			}
			r, err := reference.ParseDocker(args[0])
			if err != nil {
				return err
			}
			nref, err := name.ParseReference(r.String())
			if err != nil {
				return err
			}
			opts := registry.PushOptions{SourceDB: sourceDB(g), Insecure: g.insecure}
			var printer *progress.Printer
			if !quiet {
				fmt.Printf("The push refers to repository [%s]\n", r.Name())
				printer = progress.NewPrinter(os.Stdout, isTTY(os.Stdout))
				opts.Progress = printer
			}
			desc := img.Manifest
			if img.Index != nil {
				desc = *img.Index
			}
			err = registry.Push(ctx, nref, be.images.Content(), desc, opts)
			if printer != nil {
				printer.Done()
			}
			if err != nil {
				return err
			}
			// As docker push: the image now has a digest in that repository.
			if _, err := be.images.Register(ctx, desc, []string{r.TrimNamed().WithDigest(desc.Digest).String()}, image.WithPlatform(img.Platform)); err != nil {
				fmt.Fprintf(os.Stderr, "warning: pushed, but the repository digest was not recorded: %v\n", err)
			}
			if quiet {
				fmt.Println(desc.Digest)
			} else {
				fmt.Printf("%s: digest: %s size: %d\n", tagOrDigest(r), desc.Digest, desc.Size)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.Flags().BoolVar(&g.insecure, "insecure", false, "Allow plain http and unverified TLS for this registry (localhost and 127.0.0.0/8 always may fall back to http)")
	return exit1(cmd)
}

type imageRow struct {
	ID, Repository, Tag, Digest, CreatedSince, CreatedAt, Size string
	Containers                                                 string
}

func buildLikeImagesCmd(g *globals) *cobra.Command {
	var all, quiet, digests, noTrunc bool
	var filterList []string
	var format string
	cmd := &cobra.Command{
		Use:   "images [OPTIONS] [REPOSITORY[:TAG]]",
		Short: "List images",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := g.backend()
			if err != nil {
				return err
			}
			f, err := parseFilters(filterList)
			if err != nil {
				return err
			}
			opts := image.ListOptions{}
			for k, vals := range f {
				switch k {
				case "dangling":
					v := vals[0] == "true"
					opts.Dangling = &v
				case "reference":
					opts.Reference = vals
				case "label":
					opts.Label = vals
				case "before":
					opts.Before = vals[0]
				case "since":
					opts.Since = vals[0]
				default:
					return exitCode(1, fmt.Errorf("invalid filter %q", k))
				}
			}
			if len(args) == 1 {
				opts.Reference = append(opts.Reference, args[0])
			}
			imgs, err := be.images.List(cmd.Context(), opts)
			if err != nil {
				return err
			}
			var rows []any
			for _, img := range imgs {
				id := img.ID
				if !noTrunc {
					id = img.ShortID()
				}
				base := imageRow{ID: id, CreatedSince: ago(img.Created), CreatedAt: img.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"), Size: humanSize(img.Size), Digest: "<none>"}
				// A digest belongs to one repository: each row shows its own.
				digestOf := func(repo string) string {
					for _, rd := range img.RepoDigests {
						if n, d, _ := strings.Cut(rd, "@"); n == repo {
							return d
						}
					}
					return "<none>"
				}
				if len(img.RepoTags) == 0 {
					r := base
					r.Repository, r.Tag = "<none>", "<none>"
					if len(img.RepoDigests) > 0 {
						r.Repository, r.Digest, _ = strings.Cut(img.RepoDigests[0], "@")
					}
					rows = append(rows, r)
				}
				for _, t := range img.RepoTags {
					// As docker images: with a reference filter, only the
					// names that match it.
					if len(opts.Reference) > 0 && !tagMatches(t, opts.Reference) {
						continue
					}
					r := base
					i := strings.LastIndex(t, ":")
					r.Repository, r.Tag = t[:i], t[i+1:]
					r.Digest = digestOf(r.Repository)
					rows = append(rows, r)
				}
			}
			if quiet {
				seen := map[string]bool{}
				for _, r := range rows {
					id := r.(imageRow).ID
					if !seen[id] {
						seen[id] = true
						fmt.Println(id)
					}
				}
				return nil
			}
			def := "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
			if digests {
				def = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
			}
			return render(os.Stdout, format, rows, map[string]string{"ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT"}, def)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all images")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	fl.BoolVar(&digests, "digests", false, "Show digests")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fl.StringArrayVarP(&filterList, "filter", "f", nil, "Filter output based on conditions provided")
	fl.StringVar(&format, "format", "", "Format output using a custom template")
	return exit1(cmd)
}

func rmiCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove one or more images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := g.backend()
			if err != nil {
				return err
			}
			return eachArg(args, func(_ int, ref string) error {
				items, err := be.images.Remove(cmd.Context(), ref, force)
				if err != nil {
					return err
				}
				for _, it := range items {
					if it.Untagged != "" {
						fmt.Println("Untagged:", it.Untagged)
					}
					if it.Deleted != "" {
						fmt.Println("Deleted:", it.Deleted)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	cmd.Flags().Bool("no-prune", false, "Do not delete untagged parents")
	return cmd
}

func tagCmd(g *globals) *cobra.Command {
	return exit1(&cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := g.backend()
			if err != nil {
				return err
			}
			_, err = be.images.Tag(cmd.Context(), args[0], args[1])
			return err
		},
	})
}

func historyCmd(g *globals) *cobra.Command {
	var quiet, noTrunc, human bool
	var format string
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := g.backend()
			if err != nil {
				return err
			}
			hist, err := be.images.History(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			type row struct{ ID, CreatedSince, CreatedAt, CreatedBy, Size, Comment string }
			var rows []any
			for _, h := range hist {
				id, by := h.ID, h.CreatedBy
				if !noTrunc {
					if strings.HasPrefix(id, "sha256:") {
						id = strings.TrimPrefix(id, "sha256:")[:12]
					}
					if len(by) > 45 {
						by = by[:44] + "…"
					}
				}
				if quiet {
					fmt.Println(id)
					continue
				}
				size := fmt.Sprint(h.Size)
				if human {
					size = humanSize(h.Size)
				}
				rows = append(rows, row{ID: id, CreatedSince: ago(h.Created), CreatedAt: h.Created.Format(time.RFC3339), CreatedBy: by, Size: size, Comment: h.Comment})
			}
			if quiet {
				return nil
			}
			return render(os.Stdout, format, rows, map[string]string{"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedBy": "CREATED BY"},
				"table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}")
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	cmd.Flags().BoolVarP(&human, "human", "H", true, "Print sizes and dates in human readable format")
	cmd.Flags().StringVar(&format, "format", "", "Format output using a custom template")
	return exit1(cmd)
}

func saveCmd(g *globals) *cobra.Command {
	var output, format string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmtv, err := archive.ParseFormat(format)
			if err != nil {
				return exitCode(125, err)
			}
			be, err := g.backend()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var items []archive.SaveItem
			for _, ref := range args {
				img, err := be.images.Get(ctx, ref)
				if err != nil {
					return err
				}
				names := img.RepoTags
				if !reference.IsIDPrefix(ref) {
					names = []string{ref}
				}
				items = append(items, archive.SaveItem{Names: names, Manifest: img.Manifest})
			}
			return writeArchive(output, func(w io.Writer) error {
				return archive.Save(ctx, w, be.images.Content(), items, fmtv)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	cmd.Flags().StringVar(&format, "format", "docker-archive", "Archive format: docker-archive or oci-archive")
	return exit1(cmd)
}

func loadCmd(g *globals) *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = os.Stdin
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			} else if isTTY(os.Stdin) {
				return exitCode(1, errors.New("requested load from stdin, but stdin is empty: use -i FILE or redirect"))
			}
			be, err := g.backend()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var pr progress.Reporter = progress.Discard
			var printer *progress.Printer
			if !quiet {
				printer = progress.NewPrinter(os.Stdout, isTTY(os.Stdout))
				pr = printer
			}
			release, err := be.images.Lease(ctx)
			if err != nil {
				return err
			}
			defer release()
			src := "stdin"
			if input != "" {
				src = input
			}
			// Layers are extracted as they pass (Stager), and only placed
			// on their parents and committed once the archive checked out.
			st, err := be.images.NewStager(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			loaded, err := archive.LoadWith(ctx, r, be.images.Content(), archive.LoadOptions{
				Progress: pr,
				BlobHook: func(desc ocispec.Descriptor, r io.Reader) error { return st.Stage(ctx, desc.Digest, r) },
			})
			if err != nil {
				if printer != nil {
					printer.Done()
				}
				return fmt.Errorf("load %s: %w", src, err)
			}
			var imgs []*image.Image
			for _, l := range loaded {
				img, err := be.images.Register(ctx, l.Manifest, l.Names)
				if err != nil {
					return fmt.Errorf("load %s: %w", src, err)
				}
				if _, err := be.images.Unpack(ctx, img, image.WithProgress(pr), image.WithStaged(st)); err != nil {
					return fmt.Errorf("load %s: %w", src, err)
				}
				imgs = append(imgs, img)
			}
			if printer != nil {
				printer.Done()
			}
			for _, img := range imgs {
				if len(img.RepoTags) == 0 {
					fmt.Println("Loaded image ID:", img.ID)
				}
				for _, t := range img.RepoTags {
					fmt.Println("Loaded image:", t)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return exit1(cmd)
}

func importCmd(g *globals) *cobra.Command {
	var changes []string
	var message, platform string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|-  [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = os.Stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			be, err := g.backend()
			if err != nil {
				return err
			}
			img, err := be.images.Import(cmd.Context(), r, ref, changes, message)
			if err != nil {
				return err
			}
			fmt.Println(img.ID)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	cmd.Flags().StringVarP(&message, "message", "m", "", "Set commit message for imported image")
	cmd.Flags().StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	return exit1(cmd)
}

func imagePruneCmd(g *globals) *cobra.Command {
	var all bool
	cmd := pruneCmd("Remove unused images", func(cmd *cobra.Command) error {
		be, err := g.backend()
		if err != nil {
			return err
		}
		rep, err := be.images.Prune(cmd.Context(), all)
		if err != nil {
			return err
		}
		if len(rep.Items) > 0 {
			fmt.Println("Deleted Images:")
			for _, it := range rep.Items {
				if it.Untagged != "" {
					fmt.Println("untagged:", it.Untagged)
				}
				if it.Deleted != "" {
					fmt.Println("deleted:", it.Deleted)
				}
			}
			fmt.Println()
		}
		fmt.Println("Total reclaimed space:", humanSize(rep.SpaceReclaimed))
		return nil
	})
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	return exit1(cmd)
}

func loginCmd(g *globals) *cobra.Command {
	var user, password string
	var stdin, insecure bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Authenticate to a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := "docker.io"
			if len(args) == 1 {
				server = args[0]
			}
			if stdin {
				data, err := io.ReadAll(os.Stdin)
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(data), "\r\n")
			}
			if user == "" || password == "" {
				return exitCode(1, errors.New("username and password are required (-u USER and -p PASSWORD or --password-stdin)"))
			}
			if err := registry.Login(cmd.Context(), server, user, password, registry.LoginOptions{Insecure: insecure}); err != nil {
				return err
			}
			if err := registry.SaveCredentials(server, user, password); err != nil {
				return err
			}
			fmt.Println("Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "Username")
	cmd.Flags().StringVarP(&password, "password", "p", "", "Password")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "Take the password from stdin")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "Allow plain http or unverified TLS")
	return exit1(cmd)
}

func logoutCmd(g *globals) *cobra.Command {
	return exit1(&cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := "docker.io"
			if len(args) == 1 {
				server = args[0]
			}
			if err := registry.RemoveCredentials(server); err != nil {
				return err
			}
			fmt.Printf("Removing login credentials for %s\n", server)
			return nil
		},
	})
}

// tagMatches reports whether the name tag matches one of the reference
// filter's patterns (as the image store's reference filter matches).
func tagMatches(tag string, patterns []string) bool {
	r, err := reference.Parse(tag)
	if err != nil {
		return false
	}
	for _, p := range patterns {
		for _, s := range []string{r.FamiliarName(), r.Familiar(), r.String()} {
			if ok, _ := path.Match(p, s); ok {
				return true
			}
		}
	}
	return false
}

// exit1 makes cmd exit with 1 on an error that names no exit code, as
// docker's image commands do (125 stays for usage errors).
func exit1(cmd *cobra.Command) *cobra.Command {
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		err := run(c, args)
		var ee *exitError
		if err == nil || errors.As(err, &ee) {
			return err
		}
		return exitCode(1, err)
	}
	return cmd
}

var _ = gzip.NewReader
