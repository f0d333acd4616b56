package archive

import "github.com/berth-project/berth/image/reference"

// normalizeName returns the full form of an image name, Docker-style:
// docker.io/library/busybox:latest for busybox.
func normalizeName(s string) (string, error) {
	r, err := reference.ParseDocker(s)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

// appendName appends name to names unless it is there already.
func appendName(names []string, name string) []string {
	for _, n := range names {
		if n == name {
			return names
		}
	}
	return append(names, name)
}
