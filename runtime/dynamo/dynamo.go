// Package dynamo is the engine.StateStore adapter on DynamoDB: one item per cluster holding
// the engine.State (as a JSON string attribute) and a lease lock with a fencing token.
//
// Item layout (partition key "cluster_id", string):
//
//	cluster_id     S  the cluster id
//	state          S  engine.State as JSON (worker count, last scale times, intent record, backoff)
//	holder         S  lease holder (absent when released)
//	fence          N  fencing token, bumped by every Acquire
//	lease_expires  N  lease expiry, Unix milliseconds (absent when released)
//	updated_at     S  RFC 3339 time of the last write (for people)
//
// Acquire succeeds when `attribute_not_exists(holder) OR lease_expires < :now` and bumps
// the fence; Save and Release are conditioned on holder AND fence, so a holder whose lease
// was taken over can no longer write.
package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/smartscale/smartscale/engine"
)

// Attribute names.
const (
	KeyAttr     = "cluster_id"
	stateAttr   = "state"
	holderAttr  = "holder"
	fenceAttr   = "fence"
	expiresAttr = "lease_expires"
	updatedAttr = "updated_at"
)

// API lists the DynamoDB calls the store uses.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Store keeps one cluster's state and lock in a table.
type Store struct {
	api     API
	table   string
	cluster string
	// Now is the clock for Save/Release bookkeeping (updated_at); default time.Now.
	Now func() time.Time
}

var _ engine.StateStore = (*Store)(nil)

// New returns the store of cluster in table.
func New(api API, table, cluster string) *Store {
	return &Store{api: api, table: table, cluster: cluster, Now: time.Now}
}

func (s *Store) key() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{KeyAttr: &types.AttributeValueMemberS{Value: s.cluster}}
}

// Load reads the state without the lock. A missing item is the zero state.
func (s *Store) Load(ctx context.Context) (engine.State, error) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &s.table, Key: s.key(), ConsistentRead: aws.Bool(true),
		ProjectionExpression:     aws.String("#s"),
		ExpressionAttributeNames: map[string]string{"#s": stateAttr},
	})
	if err != nil {
		return engine.State{}, fmt.Errorf("reading state of %s from %s: %w", s.cluster, s.table, err)
	}
	return decodeState(out.Item)
}

// Acquire takes the lease when it is free or expired and bumps the fence.
func (s *Store) Acquire(ctx context.Context, holder string, now time.Time, lease time.Duration) (engine.Lease, engine.State, error) {
	expires := now.Add(lease)
	out, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           &s.table,
		Key:                 s.key(),
		UpdateExpression:    aws.String("SET #h = :h, #e = :exp, #u = :u ADD #f :one"),
		ConditionExpression: aws.String("attribute_not_exists(#h) OR #e < :now"),
		ExpressionAttributeNames: map[string]string{
			"#h": holderAttr, "#e": expiresAttr, "#f": fenceAttr, "#u": updatedAttr,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":h":   &types.AttributeValueMemberS{Value: holder},
			":exp": millis(expires),
			":now": millis(now),
			":one": &types.AttributeValueMemberN{Value: "1"},
			":u":   &types.AttributeValueMemberS{Value: now.UTC().Format(time.RFC3339Nano)},
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		if isConditionFailed(err) {
			return engine.Lease{}, engine.State{}, fmt.Errorf("acquiring lock of %s as %s: %w", s.cluster, holder, engine.ErrLockHeld)
		}
		return engine.Lease{}, engine.State{}, fmt.Errorf("acquiring lock of %s: %w", s.cluster, err)
	}
	fence, err := numberAttr(out.Attributes, fenceAttr)
	if err != nil {
		return engine.Lease{}, engine.State{}, err
	}
	st, err := decodeState(out.Attributes)
	if err != nil {
		return engine.Lease{}, engine.State{}, err
	}
	return engine.Lease{Holder: holder, Fence: fence, Expires: time.UnixMilli(expires.UnixMilli()).UTC()}, st, nil
}

// Save writes the state if the lease is still the newest.
func (s *Store) Save(ctx context.Context, lease engine.Lease, st engine.State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	_, err = s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &s.table,
		Key:                      s.key(),
		UpdateExpression:         aws.String("SET #s = :s, #u = :u"),
		ConditionExpression:      aws.String("#h = :h AND #f = :f"),
		ExpressionAttributeNames: map[string]string{"#s": stateAttr, "#h": holderAttr, "#f": fenceAttr, "#u": updatedAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":s": &types.AttributeValueMemberS{Value: string(b)},
			":h": &types.AttributeValueMemberS{Value: lease.Holder},
			":f": &types.AttributeValueMemberN{Value: strconv.FormatInt(lease.Fence, 10)},
			":u": &types.AttributeValueMemberS{Value: s.Now().UTC().Format(time.RFC3339Nano)},
		},
	})
	if err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("saving state of %s as %s (fence %d): %w", s.cluster, lease.Holder, lease.Fence, engine.ErrFenced)
		}
		return fmt.Errorf("saving state of %s: %w", s.cluster, err)
	}
	return nil
}

// Renew extends the lease to until if the caller still holds it with the same fence: the
// conditional write the engine makes right before each side effect.
func (s *Store) Renew(ctx context.Context, lease engine.Lease, until time.Time) (engine.Lease, error) {
	_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &s.table,
		Key:                      s.key(),
		UpdateExpression:         aws.String("SET #e = :exp, #u = :u"),
		ConditionExpression:      aws.String("#h = :h AND #f = :f"),
		ExpressionAttributeNames: map[string]string{"#h": holderAttr, "#e": expiresAttr, "#f": fenceAttr, "#u": updatedAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":exp": millis(until),
			":h":   &types.AttributeValueMemberS{Value: lease.Holder},
			":f":   &types.AttributeValueMemberN{Value: strconv.FormatInt(lease.Fence, 10)},
			":u":   &types.AttributeValueMemberS{Value: s.Now().UTC().Format(time.RFC3339Nano)},
		},
	})
	if err != nil {
		if isConditionFailed(err) {
			return engine.Lease{}, fmt.Errorf("renewing lock of %s as %s (fence %d): %w", s.cluster, lease.Holder, lease.Fence, engine.ErrFenced)
		}
		return engine.Lease{}, fmt.Errorf("renewing lock of %s: %w", s.cluster, err)
	}
	lease.Expires = time.UnixMilli(until.UnixMilli()).UTC()
	return lease, nil
}

// Release gives the lease up if the caller still holds it with the same fence.
func (s *Store) Release(ctx context.Context, lease engine.Lease) error {
	_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &s.table,
		Key:                      s.key(),
		UpdateExpression:         aws.String("REMOVE #h, #e SET #u = :u"),
		ConditionExpression:      aws.String("#h = :h AND #f = :f"),
		ExpressionAttributeNames: map[string]string{"#h": holderAttr, "#e": expiresAttr, "#f": fenceAttr, "#u": updatedAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":h": &types.AttributeValueMemberS{Value: lease.Holder},
			":f": &types.AttributeValueMemberN{Value: strconv.FormatInt(lease.Fence, 10)},
			":u": &types.AttributeValueMemberS{Value: s.Now().UTC().Format(time.RFC3339Nano)},
		},
	})
	if err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("releasing lock of %s as %s (fence %d): %w", s.cluster, lease.Holder, lease.Fence, engine.ErrFenced)
		}
		return fmt.Errorf("releasing lock of %s: %w", s.cluster, err)
	}
	return nil
}

func millis(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.UnixMilli(), 10)}
}

func isConditionFailed(err error) bool {
	var cc *types.ConditionalCheckFailedException
	return errors.As(err, &cc)
}

func numberAttr(item map[string]types.AttributeValue, name string) (int64, error) {
	n, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("item has no number attribute %q", name)
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("attribute %q: %w", name, err)
	}
	return v, nil
}

func decodeState(item map[string]types.AttributeValue) (engine.State, error) {
	var st engine.State
	v, ok := item[stateAttr]
	if !ok {
		return st, nil
	}
	sv, ok := v.(*types.AttributeValueMemberS)
	if !ok {
		return st, fmt.Errorf("attribute %q is %T, want a string", stateAttr, v)
	}
	if err := json.Unmarshal([]byte(sv.Value), &st); err != nil {
		return st, fmt.Errorf("decoding state: %w", engine.JSONError([]byte(sv.Value), err))
	}
	return st, nil
}

// TableAPI is what CreateTable needs.
type TableAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// CreateTable creates a table with the store's key schema (on-demand billing). The
// production table is created by deploy/; tests and local runs use this.
func CreateTable(ctx context.Context, api TableAPI, table string) error {
	_, err := api.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            &table,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(KeyAttr), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(KeyAttr), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		return fmt.Errorf("creating table %s: %w", table, err)
	}
	// A new table answers ResourceNotFoundException until it is ACTIVE (DynamoDB and
	// dynalite alike): wait for it, bounded by ctx and a minute.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		out, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
		if err == nil && out.Table != nil && out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for table %s to be ACTIVE: %w", table, ctx.Err())
		case <-time.After(delay):
		}
	}
}
