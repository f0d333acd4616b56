package seccomp

import "testing"

func BenchmarkCompileDefaultProfile(b *testing.B) {
	p := DefaultProfile()
	for b.Loop() {
		if _, err := Compile(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDefaultProfile(b *testing.B) {
	for b.Loop() {
		DefaultProfile()
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	p, err := Compile(DefaultProfile())
	if err != nil {
		b.Fatal(err)
	}
	data, err := p.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(p.Filter)), "insns")
	for b.Loop() {
		var q Program
		if err := q.UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
}
