package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/caps"
	"github.com/berth-project/berth/runtime/rootfs"
	"github.com/berth-project/berth/runtime/seccomp"
)

// The C init (package nsenter, cinit.c) runs a create's init without ever
// starting the Go runtime in it: the runtime sends it a plan, a flat list
// of steps it executes in order and then execs the user's program. The
// plan holds everything createInit would do, already decided: the
// propagation and mount steps of package rootfs (PlanPrepare and
// PlanFinalize), the pivot, hostname, sysctls, keyring, rlimits, the
// handshake with the runtime (cgroup, hooks, ready, exec fifo), and the
// process: argv, env, cwd, user, capability sets, no_new_privs and the
// compiled seccomp program. Configurations with anything the C init does
// not do (user or time namespaces, a terminal, createContainer or
// startContainer hooks, LSM labels, --no-pivot, no mount namespace or a
// joined one, tmpcopyup, cgroup v2 mounts) keep the Go init; so does every
// create when BERTH_RUNC_GOINIT=1 is set (for tests of that path).
//
// Wire format (little endian): "BPLN", u32 version, u32 flags (1: trace
// phases to stderr), then records. Each
// record but the last is: u8 op, u32 bits, u64 a, b, c, u64 rec_set,
// rec_clr, rec_prop, u32 n + n×u64 propagation flags, then six strings
// (source, fstype, dest, data, target, err), each u32 length, bytes and a
// NUL. The last record is planExec, whose layout is written by encodeExec.
const (
	msgPlan     = 'X' // parent: the C init's plan
	planVersion = 1
)

// Plan ops past the rootfs steps (rootfs.StepOp values 1..10 are used as is).
const (
	planWaitCgroup = 32 + iota // wait for msgCgroup, join the tasks files sent with it; bits: unshare the cgroup namespace
	planHooks                  // ask the parent to run createRuntime/prestart hooks
	planHostname               // data
	planDomainname             // data
	planWriteFile              // dest, data
	planKeyring                // data: session keyring name
	planRlimit                 // a: resource, b: soft, c: hard
	planReady                  // a: first fd to close (3+preserved), b: exec fifo fd
	planExec                   // the process (encodeExec)
)

// Record bits.
const (
	bitBind = 1 << iota
	bitKeepMode
	bitCheckProcSys
	bitNeedDir
	bitProcSource
	bitReplace
	bitRetryBusy
	bitRecAttr
	bitCgroupNS
)

type planBuf struct{ b []byte }

func (p *planBuf) u8(v uint8)   { p.b = append(p.b, v) }
func (p *planBuf) u32(v uint32) { p.b = binary.LittleEndian.AppendUint32(p.b, v) }
func (p *planBuf) u64(v uint64) { p.b = binary.LittleEndian.AppendUint64(p.b, v) }
func (p *planBuf) str(s string) {
	p.u32(uint32(len(s)))
	p.b = append(p.b, s...)
	p.b = append(p.b, 0)
}

type planRec struct {
	op                   uint8
	bits                 uint32
	a, b, c              uint64
	rec                  *unix.MountAttr
	props                []uintptr
	source, fstype, dest string
	data, target, err    string
}

func (p *planBuf) rec(r planRec) {
	p.u8(r.op)
	bits := r.bits
	var rs, rc, rp uint64
	if r.rec != nil {
		bits |= bitRecAttr
		rs, rc, rp = r.rec.Attr_set, r.rec.Attr_clr, r.rec.Propagation
	}
	p.u32(bits)
	p.u64(r.a)
	p.u64(r.b)
	p.u64(r.c)
	p.u64(rs)
	p.u64(rc)
	p.u64(rp)
	p.u32(uint32(len(r.props)))
	for _, f := range r.props {
		p.u64(uint64(f))
	}
	for _, s := range []string{r.source, r.fstype, r.dest, r.data, r.target, r.err} {
		p.str(s)
	}
}

func (p *planBuf) step(s rootfs.Step) {
	r := planRec{op: uint8(s.Op), a: uint64(s.Flags), b: uint64(s.Remount), rec: s.RecAttr, props: s.Propagation,
		source: s.Source, fstype: s.FSType, dest: s.Dest, data: s.Data, target: s.Target, err: s.Err}
	if s.Op == rootfs.StepMknodIn {
		r.a, r.b, r.c = uint64(s.Mode), s.Dev, uint64(s.UID)<<32|uint64(s.GID)
	}
	if s.Op == rootfs.StepSymlinkIn {
		r.data = s.Name
	}
	for _, f := range []struct {
		on  bool
		bit uint32
	}{{s.Bind, bitBind}, {s.KeepMode, bitKeepMode}, {s.CheckProcSys, bitCheckProcSys}, {s.NeedDir, bitNeedDir},
		{s.ProcSource, bitProcSource}, {s.Replace, bitReplace}, {s.RetryBusy, bitRetryBusy}} {
		if f.on {
			r.bits |= f.bit
		}
	}
	p.rec(r)
}

// cinitPlan returns the C init's plan for a create, or nil when the
// configuration needs the Go init. Errors are configuration errors, the
// ones the Go init would have reported.
func cinitPlan(cfg *initConfig, req *spawnRequest, filter *seccomp.Program) ([]byte, error) {
	spec := cfg.Spec
	p := spec.Process
	if os.Getenv("BERTH_RUNC_GOINIT") == "1" || cfg.UserNS || cfg.NoPivot || !cfg.NewMountNS || cfg.NoMountNS ||
		req.clone&(unix.CLONE_NEWUSER|unix.CLONE_NEWTIME) != 0 || len(req.uidMaps)+len(req.gidMaps) > 0 ||
		p == nil || p.Terminal || cfg.ConsoleFd >= 0 || p.ApparmorProfile != "" || p.SelinuxLabel != "" ||
		spec.Linux == nil || spec.Linux.MountLabel != "" {
		return nil, nil
	}
	for _, j := range req.joins {
		if j.flag&(unix.CLONE_NEWUSER|unix.CLONE_NEWNS|unix.CLONE_NEWTIME) != 0 {
			return nil, nil
		}
	}
	if h := spec.Hooks; h != nil && (len(h.CreateContainer) > 0 || len(h.StartContainer) > 0) {
		return nil, nil
	}
	rc := &rootfs.Config{Rootfs: cfg.Rootfs, Spec: spec, CgroupPaths: cfg.CgroupPaths, CgroupNS: cfg.CgroupNS}
	prepare, err := rootfs.PlanPrepare(rc)
	if errors.Is(err, rootfs.ErrNoPlan) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	finalize, err := rootfs.PlanFinalize(rc)
	if errors.Is(err, rootfs.ErrNoPlan) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pb planBuf
	pb.b = append(pb.b, "BPLN"...)
	pb.u32(planVersion)
	if traceOn {
		pb.u32(1)
	} else {
		pb.u32(0)
	}
	var cgBits uint32
	if cfg.CgroupNS {
		cgBits = bitCgroupNS
	}
	// The init joins its cgroup (v1: writes "0" to the tasks files that
	// come with msgCgroup) when the runtime has made it: only the cgroup
	// mounts need it earlier, so the rest of the root filesystem is built
	// while the runtime makes the cgroup. Cgroup v2 mounts are not planned.
	waited := false
	wait := func() {
		if !waited {
			pb.rec(planRec{op: planWaitCgroup, bits: cgBits})
			waited = true
		}
	}
	for _, s := range prepare {
		if s.Cgroup {
			wait()
		}
		pb.step(s)
	}
	if cwd := p.Cwd; cwd != "" {
		pb.step(rootfs.Step{Op: rootfs.StepMkdirIn, Dest: filepath.Clean("/" + cwd), Err: "process.cwd " + cwd})
	}
	wait()
	if cfg.RuntimeHooks {
		pb.rec(planRec{op: planHooks})
	}
	pb.step(rootfs.Step{Op: rootfs.StepPivot, Dest: cfg.Rootfs, Err: "pivot_root " + cfg.Rootfs})
	if spec.Hostname != "" {
		pb.rec(planRec{op: planHostname, data: spec.Hostname, err: fmt.Sprintf("set hostname %q", spec.Hostname)})
	}
	if spec.Domainname != "" {
		pb.rec(planRec{op: planDomainname, data: spec.Domainname, err: fmt.Sprintf("set domainname %q", spec.Domainname)})
	}
	keys := make([]string, 0, len(spec.Linux.Sysctl))
	for k := range spec.Linux.Sysctl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := spec.Linux.Sysctl[k]
		pb.rec(planRec{op: planWriteFile, dest: filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/")), data: v,
			err: fmt.Sprintf("linux.sysctl %s=%s", k, v)})
	}
	for _, s := range finalize {
		pb.step(s)
	}
	if !cfg.NoNewKeyring {
		pb.rec(planRec{op: planKeyring, data: "_ses." + cfg.ID, err: "join session keyring"})
	}
	if p.OOMScoreAdj != nil {
		pb.rec(planRec{op: planWriteFile, dest: "/proc/self/oom_score_adj", data: strconv.Itoa(*p.OOMScoreAdj), err: "process.oomScoreAdj"})
	}
	for _, rl := range p.Rlimits {
		res, ok := rlimitTypes[rl.Type]
		if !ok {
			return nil, fmt.Errorf("process.rlimits: unknown type %q", rl.Type)
		}
		pb.rec(planRec{op: planRlimit, a: uint64(res), b: rl.Soft, c: rl.Hard, err: "process.rlimits " + rl.Type})
	}
	pb.rec(planRec{op: planReady, a: uint64(3 + cfg.PreserveFds), b: uint64(cfg.FifoFd)})
	if err := encodeExec(&pb, p, filter); err != nil {
		return nil, err
	}
	return pb.b, nil
}

// encodeExec writes the planExec record: u8 op; u32 argc, args; u32 envc,
// env; cwd; warnings (text for stderr); u32 uid, gid, ngroups, groups;
// u32 hascaps; u64 bounding, effective, inheritable, permitted, ambient;
// u32 lastcap, nnp, umask; u32 seccomp flags; u32 filter length in
// instructions, then 8 bytes per instruction.
func encodeExec(pb *planBuf, p *specs.Process, filter *seccomp.Program) error {
	if len(p.Args) == 0 {
		return errors.New("process.args must not be empty")
	}
	set, skipped, err := caps.FromSpec(p.Capabilities)
	if err != nil {
		return err
	}
	pb.u8(planExec)
	pb.u32(uint32(len(p.Args)))
	for _, a := range p.Args {
		pb.str(a)
	}
	pb.u32(uint32(len(p.Env)))
	for _, e := range p.Env {
		pb.str(e)
	}
	pb.str(p.Cwd)
	var warn strings.Builder
	for _, name := range skipped {
		fmt.Fprintf(&warn, "berth-runc: warning: the kernel does not know %s; not granted\n", name)
	}
	pb.str(warn.String())
	pb.u32(p.User.UID)
	pb.u32(p.User.GID)
	pb.u32(uint32(len(p.User.AdditionalGids)))
	for _, g := range p.User.AdditionalGids {
		pb.u32(g)
	}
	if p.Capabilities != nil {
		pb.u32(1)
	} else {
		pb.u32(0)
	}
	for _, m := range []uint64{set.Bounding, set.Effective, set.Inheritable, set.Permitted, set.Ambient} {
		pb.u64(m)
	}
	pb.u32(uint32(caps.Last()))
	if p.NoNewPrivileges {
		pb.u32(1)
	} else {
		pb.u32(0)
	}
	umask := uint32(0o022)
	if p.User.Umask != nil {
		umask = *p.User.Umask
	}
	pb.u32(umask)
	if filter == nil {
		pb.u32(0)
		pb.u32(0)
		return nil
	}
	pb.u32(uint32(filter.Flags))
	pb.u32(uint32(len(filter.Filter)))
	for _, ins := range filter.Filter {
		pb.b = binary.LittleEndian.AppendUint16(pb.b, ins.Code)
		pb.u8(ins.Jt)
		pb.u8(ins.Jf)
		pb.u32(ins.K)
	}
	return nil
}
