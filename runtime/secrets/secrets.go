// Package secrets reads secrets from AWS Secrets Manager and caches them for the life of
// the process (a Lambda execution environment), so warm invocations do not call it again.
package secrets

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// API lists the Secrets Manager calls used.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Cache reads secrets once.
type Cache struct {
	api  API
	mu   sync.Mutex
	vals map[string]string
}

// New returns a cache over api.
func New(api API) *Cache { return &Cache{api: api, vals: map[string]string{}} }

// Get returns the secret's string value.
func (c *Cache) Get(ctx context.Context, id string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.vals[id]; ok {
		return v, nil
	}
	out, err := c.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return "", fmt.Errorf("reading secret %s: %w", id, err)
	}
	v := aws.ToString(out.SecretString)
	if v == "" && len(out.SecretBinary) > 0 {
		v = string(out.SecretBinary)
	}
	if v == "" {
		return "", fmt.Errorf("secret %s is empty", id)
	}
	c.vals[id] = v
	return v, nil
}

// Field returns one field of a secret: the whole value when it is not a JSON object, else
// the first of keys present in the object.
func Field(value string, keys ...string) (string, error) {
	v := strings.TrimSpace(value)
	if !strings.HasPrefix(v, "{") {
		return v, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return "", fmt.Errorf("secret is neither a plain value nor a JSON object: %w", err)
	}
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s, nil
		}
	}
	return "", fmt.Errorf("secret has none of the keys %v", keys)
}
