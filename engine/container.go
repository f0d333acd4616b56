package engine

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"regexp"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-project/berth/storage/archive"
)

// Container is the engine's record of a container, stored in the metadata
// database. Its Config and HostConfig are Docker's types, so `inspect`
// shows Docker's shape and a Docker-compatible API can use them unchanged.
type Container struct {
	ID         string
	Name       string
	Created    time.Time
	Path       string
	Args       []string
	Config     *container.Config
	HostConfig *container.HostConfig
	Image      string // image ID
	ImageRef   string // the image as the user named it
	Snapshot   string // key of the writable snapshot holding the root filesystem
	State      State
	// RestartCount counts restarts made by the restart policy since the
	// last user start.
	RestartCount int
	Mounts       []MountPoint
	Network      *NetworkInfo `json:",omitempty"`
	// NetworkAliases and StaticIP are --network-alias and --ip.
	NetworkAliases []string `json:",omitempty"`
	StaticIP       string   `json:",omitempty"`
	// IDMap is the container's user namespace mapping (--userns auto);
	// nil when it shares the host's.
	IDMap *archive.IDMap `json:",omitempty"`
}

// State is a container's life-cycle state as last recorded. Reads refresh
// it against the runtime and the supervisor (see Engine.refresh).
type State struct {
	Status        string // created, running, paused, restarting, exited, dead, removing
	Pid           int
	ExitCode      int
	OOMKilled     bool
	Error         string
	StartedAt     time.Time
	FinishedAt    time.Time
	StoppedByUser bool
	Health        *container.Health `json:",omitempty"`
}

// MountPoint is a resolved volume, bind or tmpfs mount of a container.
type MountPoint struct {
	Type        string // volume, bind, tmpfs
	Name        string `json:",omitempty"` // volume name
	Source      string
	Destination string
	RW          bool
	Options     []string `json:",omitempty"`
	Anonymous   bool     `json:",omitempty"`
}

// NetworkInfo is where the container's network namespace is.
type NetworkInfo struct {
	Mode       string
	SandboxKey string                   `json:",omitempty"`
	Ports      map[string][]string      `json:",omitempty"`
	Networks   map[string]*EndpointInfo `json:",omitempty"`
}

// Running reports whether the container has live processes.
func (s *State) Running() bool {
	return s.Status == "running" || s.Status == "paused" || s.Status == "restarting"
}

func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// ShortID is the 12-character form of an id, as Docker prints it.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidateName checks a container or volume name as Docker does.
func ValidateName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least two characters", name)
	}
	return nil
}

var (
	adjectives = strings.Fields(`admiring adoring agitated amazing angry awesome blissful bold boring brave busy charming clever compassionate confident cool cranky crazy dazzling determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic exciting fervent festive flamboyant focused friendly frosty funny gallant gifted goofy gracious great happy hardcore heuristic hopeful hungry infallible inspiring intelligent interesting jolly jovial keen kind laughing loving lucid magical modest musing mystifying naughty nervous nice nifty nostalgic objective optimistic peaceful pedantic pensive practical priceless quirky quizzical recursing relaxed reverent romantic sad serene sharp silly sleepy stoic strange stupefied suspicious sweet tender thirsty trusting unruffled upbeat vibrant vigilant vigorous wizardly wonderful xenodochial youthful zealous zen`)
	nouns      = strings.Fields(`albattani allen almeida archimedes ardinghelli aryabhata austin babbage banach bardeen bartik bassi beaver bell bhabha bhaskara black blackwell bohr booth borg bose boyd brahmagupta brattain brown carson cerf chandrasekhar chatelet chatterjee chaum chebyshev clarke colden cori cray curie darwin davinci dewdney dhawan diffie dijkstra dirac driscoll dubinsky easley edison einstein elbakyan elgamal elion ellis engelbart euclid euler faraday feistel fermat fermi feynman franklin gagarin galileo galois ganguly gates gauss germain goldberg goldstine goldwasser golick goodall gould greider grothendieck haibt hamilton haslett hawking heisenberg hellman hermann herschel hertz heyrovsky hodgkin hofstadter hoover hopper hugle hypatia jackson jang jemison jennings jepsen johnson joliot jones kalam kapitsa kare keldysh keller kepler khayyam khorana kilby kirch knuth kowalevski lalande lamarr lamport leakey leavitt lederberg lehmann lewin lichterman liskov lovelace lumiere mahavira margulis matsumoto maxwell mayer mccarthy mcclintock mclaren mclean mcnulty meitner mendel mendeleev meninsky merkle mestorf mirzakhani montalcini moore morse moser murdock napier nash neumann newton nightingale nobel noether northcutt noyce panini pare pascal pasteur payne perlman pike poincare poitras proskuriakova ptolemy raman ramanujan rhodes ride ritchie robinson roentgen rosalind rubin saha sammet sanderson satoshi shamir shannon shaw shirley shockley shtern sinoussi snyder solomon spence stonebraker sutherland swanson swartz swirles taussig tesla tharp thompson torvalds tu turing varahamihira vaughan villani visvesvaraya volhard wescoff wilbur wiles williams williamson wilson wing wozniak wright wu yalow yonath zhukovsky`)
)

func randomName() string {
	return adjectives[mrand.IntN(len(adjectives))] + "_" + nouns[mrand.IntN(len(nouns))]
}
