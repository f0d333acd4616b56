package runtime

import "errors"

var (
	// ErrNotExist: no container with that id.
	ErrNotExist = errors.New("container does not exist")
	// ErrExist: a container with that id exists already.
	ErrExist = errors.New("container already exists")
	// ErrInvalidID: the id is empty, too long or has characters other than [A-Za-z0-9_+.-].
	ErrInvalidID = errors.New("invalid container id")
	// ErrNotRunning: the operation needs a created or running container.
	ErrNotRunning = errors.New("container is not running")
	// ErrNotCreated: start needs a container in the created state.
	ErrNotCreated = errors.New("container is not in the created state")
	// ErrRunning: the container's processes are still running.
	ErrRunning = errors.New("container is running")
	// ErrInvalidConfig: the config.json is unusable; the message names the field.
	ErrInvalidConfig = errors.New("invalid config")
)
