package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrNotFound is returned (wrapped) when the registry has no such
// repository, tag, manifest or blob.
var ErrNotFound = errors.New("not found in registry")

// ErrUnauthorized is returned (wrapped) when the registry refuses the
// credentials, or asks for credentials that were not given.
var ErrUnauthorized = errors.New("unauthorized")

// userAgent is sent with every request.
const userAgent = "berth"

// remote is the connection settings shared by Pull, Push and Login.
type remote struct {
	insecure  bool
	keychain  authn.Keychain
	auth      authn.Authenticator
	transport http.RoundTripper
}

// repoClient talks to one repository of one registry with the
// authentication the scopes it was made for allow.
type repoClient struct {
	reg    name.Registry
	repo   name.Repository
	client *http.Client
}

// registryFor returns reg, marked insecure when asked for: plain http is
// then tried after https, and TLS certificates are not verified.
func registryFor(reg name.Registry, insecure bool) name.Registry {
	if !insecure {
		return reg
	}
	r, err := name.NewRegistry(reg.RegistryStr(), name.Insecure)
	if err != nil {
		return reg
	}
	return r
}

// baseTransport is the http.RoundTripper under authentication.
func (o remote) baseTransport() http.RoundTripper {
	if o.transport != nil {
		return o.transport
	}
	t := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	if o.insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with Insecure
	}
	return t
}

// httpGuard refuses plain http to a registry that is neither insecure nor
// on loopback: go-containerregistry also falls back to http for private
// (RFC 1918) addresses and .local names, which Docker does not allow
// without --insecure-registry.
type httpGuard struct {
	inner    http.RoundTripper
	registry string
}

func (g httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && req.URL.Host == g.registry && !isLoopback(g.registry) {
		return nil, fmt.Errorf("registry %s: plain http is allowed only for insecure registries", g.registry)
	}
	return g.inner.RoundTrip(req)
}

// isLoopback tells hosts Docker reaches over plain http by default:
// localhost, 127.0.0.0/8, ::1.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// roundTripper is the transport under authentication for reg.
func (o remote) roundTripper(reg name.Registry) http.RoundTripper {
	t := o.baseTransport()
	if !o.insecure {
		t = httpGuard{inner: t, registry: reg.RegistryStr()}
	}
	return transport.NewUserAgent(t, userAgent)
}

// authenticator resolves the credentials for reg.
func (o remote) authenticator(ctx context.Context, reg name.Registry) (authn.Authenticator, error) {
	if o.auth != nil {
		return o.auth, nil
	}
	kc := o.keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	a, err := authn.Resolve(ctx, kc, reg)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", reg.RegistryStr(), err)
	}
	return a, nil
}

// newRepoClient pings the registry, runs the authentication handshake for
// the scopes, and returns a client for repo.
func (o remote) newRepoClient(ctx context.Context, repo name.Repository, scopes []string) (*repoClient, error) {
	reg := registryFor(repo.Registry, o.insecure)
	repo.Registry = reg
	auth, err := o.authenticator(ctx, reg)
	if err != nil {
		return nil, err
	}
	rt, err := transport.NewWithContext(ctx, reg, auth, o.roundTripper(reg), scopes)
	if err != nil {
		return nil, classify(fmt.Errorf("connect to registry %s: %w", reg.RegistryStr(), err))
	}
	return &repoClient{reg: reg, repo: repo, client: &http.Client{Transport: rt}}, nil
}

// url makes the URL of an API path under /v2/<repo>/.
func (c *repoClient) url(path string, query url.Values) string {
	u := url.URL{
		Scheme: c.reg.Scheme(),
		Host:   c.reg.RegistryStr(),
		Path:   "/v2/" + c.repo.RepositoryStr() + "/" + path,
	}
	if query != nil {
		u.RawQuery = query.Encode()
	}
	return u.String()
}

// resolveURL resolves a Location header against the request URL.
func resolveURL(resp *http.Response, loc string) (string, error) {
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("bad Location %q from registry: %w", loc, err)
	}
	return u.String(), nil
}

// do sends a request and checks its status is one of codes; on any other
// status the body is read into the returned error and closed.
func (c *repoClient) do(ctx context.Context, method, u string, hdr http.Header, body io.Reader, size int64, codes ...int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, codes...); err != nil {
		resp.Body.Close()
		return nil, classify(err)
	}
	return resp, nil
}

// classify wraps registry errors with ErrNotFound or ErrUnauthorized when
// they are one of those.
func classify(err error) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return err
	}
	switch te.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	for _, d := range te.Errors {
		switch d.Code {
		case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
			return fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
	}
	return err
}

// hostOf strips a scheme and path from a registry given as a URL
// ("https://index.docker.io/v1/" -> "index.docker.io").
func hostOf(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}
