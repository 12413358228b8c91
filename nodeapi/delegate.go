package nodeapi

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The kubelet's defaults for its webhook caches.
const (
	TokenCacheTTL        = 2 * time.Minute
	AuthorizedCacheTTL   = 5 * time.Minute
	UnauthorizedCacheTTL = 30 * time.Second
)

// AuthConfig says how callers are authenticated; the kubelet's
// authentication settings of the same names.
type AuthConfig struct {
	// RestConfig reaches the API server for TokenReviews and
	// SubjectAccessReviews. Required.
	RestConfig *rest.Config
	// ClientCAFile verifies client certificates (reloaded when it
	// changes); empty: client certificates are not accepted.
	ClientCAFile string
	// Anonymous lets requests without credentials through as
	// system:anonymous (still authorised).
	Anonymous bool
	// Webhook authenticates bearer tokens by TokenReview.
	Webhook bool
}

// Auth is an authenticator and authorizer built by NewDelegatingAuth.
type Auth struct {
	Authenticator authenticator.Request
	Authorizer    authorizer.UnconditionalAuthorizer
	caFile        *dynamiccertificates.DynamicFileCAContent
}

// NewDelegatingAuth builds the kubelet's delegating authentication and
// authorisation: client certificates against cfg.ClientCAFile, bearer
// tokens by TokenReview, anonymous only when allowed; decisions by
// SubjectAccessReview, cached 5 minutes when allowed and 30 seconds when
// not. It needs no API server to start: requests fail until one answers.
func NewDelegatingAuth(cfg AuthConfig) (*Auth, error) {
	if cfg.RestConfig == nil {
		return nil, fmt.Errorf("node API authentication: a kubeconfig is required")
	}
	cs, err := kubernetes.NewForConfig(rest.CopyConfig(cfg.RestConfig))
	if err != nil {
		return nil, fmt.Errorf("node API authentication: creating client: %w", err)
	}
	backoff := &wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}
	a := &Auth{}
	authn := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous: &apiserver.AnonymousAuthConfig{Enabled: cfg.Anonymous},
		CacheTTL:  TokenCacheTTL,
	}
	if cfg.ClientCAFile != "" {
		if a.caFile, err = dynamiccertificates.NewDynamicCAContentFromFile("client-ca-bundle", cfg.ClientCAFile); err != nil {
			return nil, fmt.Errorf("node API authentication: reading client CA file: %w", err)
		}
		authn.ClientCertificateCAContentProvider = a.caFile
	}
	if cfg.Webhook {
		authn.TokenAccessReviewClient = cs.AuthenticationV1()
		authn.WebhookRetryBackoff = backoff
	}
	if a.Authenticator, _, err = authn.New(); err != nil {
		return nil, fmt.Errorf("node API authentication: %w", err)
	}
	authz := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: cs.AuthorizationV1(),
		AllowCacheTTL:             AuthorizedCacheTTL,
		DenyCacheTTL:              UnauthorizedCacheTTL,
		WebhookRetryBackoff:       backoff,
	}
	if a.Authorizer, err = authz.New(); err != nil {
		return nil, fmt.Errorf("node API authorization: %w", err)
	}
	return a, nil
}

// Run reloads the client CA file when it changes, until ctx ends.
func (a *Auth) Run(ctx context.Context) {
	if a.caFile != nil {
		a.caFile.Run(ctx, 1)
	}
}
