package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAuthorizationByAPI checks each API against Kafka's documented
// operation and resource (docs "Operations and Resources on Protocols"):
// without the ACL a principal gets the API's authorization error, with
// exactly that ACL it does not.
func TestAuthorizationByAPI(t *testing.T) {
	addr, adm := aclCluster(t, "tester")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, topic := range []string{"t", "gone", "trim"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	cl := userClient(t, addr, "tester")
	if _, err := kadm.NewClient(cl).ListBrokers(ctx); err != nil { // connect and learn the broker
		t.Fatal(err)
	}
	broker := cl.Broker(1) // node 1, at a gateway port that stands for it
	md, err := adm.Metadata(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	tID := md.Topics["t"].ID
	topic := func() *kadm.ACLBuilder { return kadm.NewACLs().Allow("User:tester").Topics("t") }
	group := func() *kadm.ACLBuilder { return kadm.NewACLs().Allow("User:tester").Groups("g") }
	cluster := func() *kadm.ACLBuilder { return kadm.NewACLs().Allow("User:tester").Clusters() }
	txnID := func() *kadm.ACLBuilder { return kadm.NewACLs().Allow("User:tester").TransactionalIDs("tx") }
	str := kmsg.StringPtr

	cases := []struct {
		api   string
		grant *kadm.ACLBuilder
		want  *kerr.Error
		req   func() kmsg.Request
		code  func(kmsg.Response) int16
	}{
		{"Produce", topic().Operations(kadm.OpWrite), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrProduceRequest()
			r.Acks, r.TimeoutMillis = 1, 5000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic, rt.TopicID = "t", tID
			rp := kmsg.NewProduceRequestTopicPartition()
			rt.Partitions = append(rt.Partitions, rp) // no records: INVALID_RECORD or the like once allowed
			r.Topics = append(r.Topics, rt)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode }},
		{"Fetch", topic().Operations(kadm.OpRead), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrFetchRequest()
			r.MaxBytes, r.MaxWaitMillis = 1<<20, 10
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = "t", tID
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes = 1 << 20
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode }},
		{"ListOffsets", topic().Operations(kadm.OpDescribe), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrListOffsetsRequest()
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = "t"
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Timestamp = -1
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode }},
		{"Metadata", topic().Operations(kadm.OpDescribe), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrMetadataRequest()
			mt := kmsg.NewMetadataRequestTopic()
			mt.Topic = str("t")
			r.Topics = append(r.Topics, mt)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.MetadataResponse).Topics[0].ErrorCode }},
		{"OffsetForLeaderEpoch", topic().Operations(kadm.OpDescribe), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrOffsetForLeaderEpochRequest()
			r.ReplicaID = -1
			rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
			rt.Topic = "t"
			rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		}, func(r kmsg.Response) int16 {
			return r.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0].ErrorCode
		}},
		{"CreateTopics", kadm.NewACLs().Allow("User:tester").Topics("new").Operations(kadm.OpCreate), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrCreateTopicsRequest()
			r.ValidateOnly = true
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "new", 1, 1
			r.Topics = append(r.Topics, rt)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode }},
		{"CreatePartitions", topic().Operations(kadm.OpAlter), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrCreatePartitionsRequest()
			r.ValidateOnly = true
			rt := kmsg.NewCreatePartitionsRequestTopic()
			rt.Topic, rt.Count = "t", 2
			r.Topics = append(r.Topics, rt)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.CreatePartitionsResponse).Topics[0].ErrorCode }},
		{"DescribeConfigs", topic().Operations(kadm.OpDescribeConfigs), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrDescribeConfigsRequest()
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "t"
			r.Resources = append(r.Resources, rr)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.DescribeConfigsResponse).Resources[0].ErrorCode }},
		{"IncrementalAlterConfigs", topic().Operations(kadm.OpAlterConfigs), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrIncrementalAlterConfigsRequest()
			r.ValidateOnly = true
			rr := kmsg.NewIncrementalAlterConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "t"
			c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			c.Name, c.Value = "retention.ms", str("1000")
			rr.Configs = append(rr.Configs, c)
			r.Resources = append(r.Resources, rr)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode }},
		{"DeleteRecords", kadm.NewACLs().Allow("User:tester").Topics("trim").Operations(kadm.OpDelete), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrDeleteRecordsRequest()
			r.TimeoutMillis = 5000
			rt := kmsg.NewDeleteRecordsRequestTopic()
			rt.Topic = "trim"
			rp := kmsg.NewDeleteRecordsRequestTopicPartition()
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0].ErrorCode }},
		{"DeleteTopics", kadm.NewACLs().Allow("User:tester").Topics("gone").Operations(kadm.OpDelete), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrDeleteTopicsRequest()
			r.TimeoutMillis = 5000
			rt := kmsg.NewDeleteTopicsRequestTopic()
			rt.Topic = str("gone")
			r.Topics = append(r.Topics, rt)
			r.TopicNames = []string{"gone"}
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode }},
		{"FindCoordinator", group().Operations(kadm.OpDescribe), kerr.GroupAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrFindCoordinatorRequest()
			r.SetVersion(3)
			r.CoordinatorKey = "g"
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.FindCoordinatorResponse).ErrorCode }},
		{"JoinGroup", group().Operations(kadm.OpRead), kerr.GroupAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrJoinGroupRequest()
			r.Group, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis, r.ProtocolType = "g", 10000, 10000, "consumer"
			p := kmsg.NewJoinGroupRequestProtocol()
			p.Name = "range"
			r.Protocols = append(r.Protocols, p)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.JoinGroupResponse).ErrorCode }},
		{"Heartbeat", group().Operations(kadm.OpRead), kerr.GroupAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrHeartbeatRequest()
			r.Group, r.MemberID = "g", "m"
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.HeartbeatResponse).ErrorCode }},
		{"OffsetFetch", group().Operations(kadm.OpDescribe), kerr.GroupAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrOffsetFetchRequest()
			r.SetVersion(7)
			r.Group = "g"
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.OffsetFetchResponse).ErrorCode }},
		{"DescribeGroups", group().Operations(kadm.OpDescribe), kerr.GroupAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrDescribeGroupsRequest()
			r.Groups = []string{"g"}
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.DescribeGroupsResponse).Groups[0].ErrorCode }},
		{"DeleteGroups", group().Operations(kadm.OpDelete), kerr.GroupAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrDeleteGroupsRequest()
			r.Groups = []string{"g"}
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode }},
		{"InitProducerId", cluster().Operations(kadm.OpIdempotentWrite), kerr.ClusterAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrInitProducerIDRequest()
			r.ProducerID, r.ProducerEpoch = -1, -1
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode }},
		{"InitProducerId (transactional)", txnID().Operations(kadm.OpWrite), kerr.TransactionalIDAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrInitProducerIDRequest()
			r.TransactionalID, r.TransactionTimeoutMillis, r.ProducerID, r.ProducerEpoch = str("tx"), 60000, -1, -1
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode }},
		{"FindCoordinator (transaction)", txnID().Operations(kadm.OpDescribe), kerr.TransactionalIDAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrFindCoordinatorRequest()
			r.SetVersion(3)
			r.CoordinatorKey, r.CoordinatorType = "tx", 1
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.FindCoordinatorResponse).ErrorCode }},
		{"AddPartitionsToTxn", txnID().Operations(kadm.OpWrite), kerr.TransactionalIDAuthorizationFailed, func() kmsg.Request {
			// Both forms: v0-3 names one transaction, v4 batches them
			// (the client sends the version it negotiated).
			r := kmsg.NewPtrAddPartitionsToTxnRequest()
			r.TransactionalID, r.ProducerID, r.ProducerEpoch = "tx", 1, 0
			rt := kmsg.NewAddPartitionsToTxnRequestTopic()
			rt.Topic, rt.Partitions = "t", []int32{0}
			r.Topics = append(r.Topics, rt)
			tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
			tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch = "tx", 1, 0
			tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
			tt.Topic, tt.Partitions = "t", []int32{0}
			tx.Topics = append(tx.Topics, tt)
			r.Transactions = append(r.Transactions, tx)
			return r
		}, func(r kmsg.Response) int16 {
			resp := r.(*kmsg.AddPartitionsToTxnResponse)
			if len(resp.Transactions) > 0 {
				return resp.Transactions[0].Topics[0].Partitions[0].ErrorCode
			}
			return resp.Topics[0].Partitions[0].ErrorCode
		}},
		{"EndTxn", txnID().Operations(kadm.OpWrite), kerr.TransactionalIDAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrEndTxnRequest()
			r.TransactionalID, r.ProducerID = "tx", 1
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.EndTxnResponse).ErrorCode }},
		{"AddOffsetsToTxn", group().Operations(kadm.OpRead), kerr.GroupAuthorizationFailed, func() kmsg.Request {
			mustACL(t, adm, txnID().Operations(kadm.OpWrite)) // the id is checked first
			r := kmsg.NewPtrAddOffsetsToTxnRequest()
			r.TransactionalID, r.ProducerID, r.Group = "tx", 1, "g"
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode }},
		{"DescribeTransactions", txnID().Operations(kadm.OpDescribe), kerr.TransactionalIDAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrDescribeTransactionsRequest()
			r.TransactionalIDs = []string{"tx"}
			return r
		}, func(r kmsg.Response) int16 {
			return r.(*kmsg.DescribeTransactionsResponse).TransactionStates[0].ErrorCode
		}},
		{"DescribeProducers", topic().Operations(kadm.OpRead), kerr.TopicAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrDescribeProducersRequest()
			rt := kmsg.NewDescribeProducersRequestTopic()
			rt.Topic, rt.Partitions = "t", []int32{0}
			r.Topics = append(r.Topics, rt)
			return r
		}, func(r kmsg.Response) int16 {
			return r.(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0].ErrorCode
		}},
		{"DescribeAcls", cluster().Operations(kadm.OpDescribe), kerr.ClusterAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrDescribeACLsRequest()
			r.ResourceType, r.ResourcePatternType, r.Operation, r.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.DescribeACLsResponse).ErrorCode }},
		{"DescribeLogDirs", cluster().Operations(kadm.OpDescribe), kerr.ClusterAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrDescribeLogDirsRequest()
			r.SetVersion(3)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.DescribeLogDirsResponse).ErrorCode }},
		{"ListPartitionReassignments", cluster().Operations(kadm.OpDescribe), kerr.ClusterAuthorizationFailed, func() kmsg.Request {
			return kmsg.NewPtrListPartitionReassignmentsRequest()
		}, func(r kmsg.Response) int16 { return r.(*kmsg.ListPartitionReassignmentsResponse).ErrorCode }},
		{"DescribeUserScramCredentials", cluster().Operations(kadm.OpDescribe), kerr.ClusterAuthorizationFailed, func() kmsg.Request {
			return kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
		}, func(r kmsg.Response) int16 { return r.(*kmsg.DescribeUserSCRAMCredentialsResponse).ErrorCode }},
		{"CreateAcls", cluster().Operations(kadm.OpAlter), kerr.ClusterAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrCreateACLsRequest()
			c := kmsg.NewCreateACLsRequestCreation()
			c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, "x", kmsg.ACLResourcePatternTypeLiteral
			c.Principal, c.Host, c.Operation, c.PermissionType = "User:nobody", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
			r.Creations = append(r.Creations, c)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.CreateACLsResponse).Results[0].ErrorCode }},
		{"UpdateFeatures", cluster().Operations(kadm.OpAlter), kerr.ClusterAuthorizationFailed, func() kmsg.Request {
			r := kmsg.NewPtrUpdateFeaturesRequest()
			r.ValidateOnly = true
			u := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
			u.Feature, u.MaxVersionLevel, u.UpgradeType = "transaction.version", 2, 1
			r.FeatureUpdates = append(r.FeatureUpdates, u)
			return r
		}, func(r kmsg.Response) int16 { return r.(*kmsg.UpdateFeaturesResponse).ErrorCode }},
		{"AlterPartitionAssignments", cluster().Operations(kadm.OpAlter), kerr.ClusterAuthorizationFailed, func() kmsg.Request {
			return kmsg.NewPtrAlterPartitionAssignmentsRequest()
		}, func(r kmsg.Response) int16 { return r.(*kmsg.AlterPartitionAssignmentsResponse).ErrorCode }},
	}
	for _, c := range cases {
		t.Run(c.api, func(t *testing.T) {
			// Start from no ACL of the tester's.
			res, err := adm.DeleteACLs(ctx, kadm.NewACLs().Allow("User:tester").AllowHosts().AnyResource().
				ResourcePatternType(kadm.ACLPatternAny).Operations())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil {
					t.Fatal(r.Err)
				}
			}
			call := func() int16 {
				t.Helper()
				resp, err := broker.Request(ctx, c.req())
				if err != nil {
					t.Fatalf("%s: %v", c.api, err)
				}
				return c.code(resp)
			}
			if got := call(); got != c.want.Code {
				t.Fatalf("without an ACL: %v, want %s", kerr.ErrorForCode(got), c.want.Message)
			}
			mustACL(t, adm, c.grant)
			if got := call(); got == c.want.Code {
				t.Fatalf("with the ACL: still %s", c.want.Message)
			}
		})
	}
}
