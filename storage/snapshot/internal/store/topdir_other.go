//go:build !linux

package store

func markTopdir(string) {}
