package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	sdkec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/runtime/config"
	"github.com/smartscale/smartscale/runtime/dynamo"
	"github.com/smartscale/smartscale/runtime/ec2"
	"github.com/smartscale/smartscale/runtime/emf"
	"github.com/smartscale/smartscale/runtime/handler"
	"github.com/smartscale/smartscale/runtime/kube"
	"github.com/smartscale/smartscale/runtime/notify"
	"github.com/smartscale/smartscale/runtime/prom"
	"github.com/smartscale/smartscale/runtime/secrets"
)

// loadAWS loads the AWS configuration (region, credentials, AWS_ENDPOINT_URL_* overrides)
// from the environment. It makes no network call.
func loadAWS(ctx context.Context) (aws.Config, error) {
	c, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return c, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return c, nil
}

// newHandler wires the handler to AWS, Prometheus and Kubernetes. Nothing here calls the
// network: the Kubernetes client (whose kubeconfig may sit in Secrets Manager) is built on
// the first tick.
func newHandler(ctx context.Context, cfg config.Config, logs, metrics io.Writer, logLevel slog.Level) (*handler.Handler, error) {
	awsCfg, err := loadAWS(ctx)
	if err != nil {
		return nil, err
	}
	sec := secrets.New(secretsmanager.NewFromConfig(awsCfg))
	h := &handler.Handler{
		Cfg:     cfg,
		Log:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: logLevel})),
		EMF:     emf.New(metrics),
		Secrets: sec,
		HTTP:    &http.Client{Timeout: 10 * time.Second},
	}
	if cfg.Has(config.RoleTick) {
		pc, err := prom.New(cfg.PrometheusURL, cfg.PrometheusTimeout, nil)
		if err != nil {
			return nil, err
		}
		a := handler.Adapters{
			Metrics: pc,
			Cloud:   ec2.New(sdkec2.NewFromConfig(awsCfg), cfg.ClusterID, cfg.LaunchTemplate, cfg.LaunchTemplateVersion),
			Store:   dynamo.New(dynamodb.NewFromConfig(awsCfg), cfg.Table, cfg.ClusterID),
		}
		if cfg.TopicARN != "" {
			a.Notifier = notify.New(sns.NewFromConfig(awsCfg), cfg.TopicARN, cfg.ClusterID)
		}
		h.BuildStep = func(ctx context.Context) (*engine.Step, error) {
			kc, err := kubeClient(ctx, cfg, sec)
			if err != nil {
				return nil, err
			}
			cl := kube.New(kc)
			cl.CallTimeout = cfg.DrainCallTimeout
			a.Cluster = cl
			return handler.NewStep(cfg, a), nil
		}
	}
	return h, nil
}

// kubeClient builds the Kubernetes client from the kubeconfig in Secrets Manager
// (SMARTSCALE_KUBECONFIG_SECRET_ARN) or in a file (KUBECONFIG).
func kubeClient(ctx context.Context, cfg config.Config, sec *secrets.Cache) (kubernetes.Interface, error) {
	var rc *rest.Config
	var err error
	if cfg.KubeconfigSecret != "" {
		var kc string
		kc, err = sec.Get(ctx, cfg.KubeconfigSecret)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		rc, err = clientcmd.RESTConfigFromKubeConfig([]byte(kc))
	} else {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	rc.Timeout = 20 * time.Second
	rc.UserAgent = "smartscale"
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, nil
}
