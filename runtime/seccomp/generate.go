package seccomp

//go:generate go run mksyscalls.go -o zsyscalls_linux.go
