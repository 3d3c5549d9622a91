package main

import (
	"fmt"
	"net"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/vpc"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Network is the VPC, its subnets and the three security groups.
type Network struct {
	Vpc            *ec2.Vpc
	PrivateSubnets []*ec2.Subnet // master, workers and the Lambda live here
	PublicSubnets  []*ec2.Subnet // the NAT gateway only
	Zones          []string      // availability zone of each private subnet, same order
	MasterSG       *ec2.SecurityGroup
	WorkerSG       *ec2.SecurityGroup
	LambdaSG       *ec2.SecurityGroup
}

// PrivateSubnetIDs returns the private subnet ids.
func (n *Network) PrivateSubnetIDs() pulumi.StringArray {
	ids := pulumi.StringArray{}
	for _, s := range n.PrivateSubnets {
		ids = append(ids, s.ID().ToStringOutput())
	}
	return ids
}

// newNetwork creates a VPC with a public and a private subnet in each of two AZs.
//
// Reaching the AWS APIs from the private subnets: one NAT gateway rather than interface
// endpoints. The Lambda needs EC2, SNS and Secrets Manager, the nodes need Secrets Manager,
// EC2 (master lookup), CloudWatch Logs, and the K3s release and container images from the
// internet. Interface endpoints for the AWS services alone would cost 4 services x 2 AZs x
// 0.01 USD/h (about 58 USD/month) and still leave the nodes without image pulls; a single NAT
// gateway costs 0.045 USD/h (about 33 USD/month) plus 0.045 USD/GB and serves everything.
// DynamoDB and S3 get free gateway endpoints so that state traffic and image layers hosted on
// S3 do not pay NAT data charges. The trade-off: one NAT in one AZ is a single point of
// failure for egress (not for the cluster itself); set one per AZ for production.
func newNetwork(ctx *pulumi.Context, cfg Config, region string, azs []string) (*Network, error) {
	n := &Network{Zones: azs}
	name := cfg.ClusterID
	var err error
	n.Vpc, err = ec2.NewVpc(ctx, "vpc", &ec2.VpcArgs{
		CidrBlock:          pulumi.String(cfg.VpcCidr),
		EnableDnsHostnames: pulumi.Bool(true),
		EnableDnsSupport:   pulumi.Bool(true),
		Tags:               tags(cfg, name),
	})
	if err != nil {
		return nil, err
	}
	igw, err := ec2.NewInternetGateway(ctx, "igw", &ec2.InternetGatewayArgs{VpcId: n.Vpc.ID(), Tags: tags(cfg, name)})
	if err != nil {
		return nil, err
	}
	publicRT, err := ec2.NewRouteTable(ctx, "public", &ec2.RouteTableArgs{
		VpcId:  n.Vpc.ID(),
		Routes: ec2.RouteTableRouteArray{&ec2.RouteTableRouteArgs{CidrBlock: pulumi.String("0.0.0.0/0"), GatewayId: igw.ID()}},
		Tags:   tags(cfg, name+"-public"),
	})
	if err != nil {
		return nil, err
	}
	for i, az := range azs {
		pub, err := ec2.NewSubnet(ctx, fmt.Sprintf("public-%d", i), &ec2.SubnetArgs{
			VpcId:            n.Vpc.ID(),
			AvailabilityZone: pulumi.String(az),
			CidrBlock:        pulumi.String(subnetCidr(cfg.VpcCidr, i)),
			Tags:             tags(cfg, fmt.Sprintf("%s-public-%s", name, az)),
		})
		if err != nil {
			return nil, err
		}
		if _, err := ec2.NewRouteTableAssociation(ctx, fmt.Sprintf("public-%d", i), &ec2.RouteTableAssociationArgs{
			SubnetId: pub.ID(), RouteTableId: publicRT.ID(),
		}); err != nil {
			return nil, err
		}
		n.PublicSubnets = append(n.PublicSubnets, pub)
	}
	eip, err := ec2.NewEip(ctx, "nat", &ec2.EipArgs{Domain: pulumi.String("vpc"), Tags: tags(cfg, name+"-nat")})
	if err != nil {
		return nil, err
	}
	nat, err := ec2.NewNatGateway(ctx, "nat", &ec2.NatGatewayArgs{
		AllocationId: eip.ID(), SubnetId: n.PublicSubnets[0].ID(), Tags: tags(cfg, name+"-nat"),
	}, pulumi.DependsOn([]pulumi.Resource{igw}))
	if err != nil {
		return nil, err
	}
	privateRT, err := ec2.NewRouteTable(ctx, "private", &ec2.RouteTableArgs{
		VpcId:  n.Vpc.ID(),
		Routes: ec2.RouteTableRouteArray{&ec2.RouteTableRouteArgs{CidrBlock: pulumi.String("0.0.0.0/0"), NatGatewayId: nat.ID()}},
		Tags:   tags(cfg, name+"-private"),
	})
	if err != nil {
		return nil, err
	}
	for i, az := range azs {
		priv, err := ec2.NewSubnet(ctx, fmt.Sprintf("private-%d", i), &ec2.SubnetArgs{
			VpcId:            n.Vpc.ID(),
			AvailabilityZone: pulumi.String(az),
			CidrBlock:        pulumi.String(subnetCidr(cfg.VpcCidr, 10+i)),
			Tags:             tags(cfg, fmt.Sprintf("%s-private-%s", name, az)),
		})
		if err != nil {
			return nil, err
		}
		if _, err := ec2.NewRouteTableAssociation(ctx, fmt.Sprintf("private-%d", i), &ec2.RouteTableAssociationArgs{
			SubnetId: priv.ID(), RouteTableId: privateRT.ID(),
		}); err != nil {
			return nil, err
		}
		n.PrivateSubnets = append(n.PrivateSubnets, priv)
	}
	for _, svc := range []string{"dynamodb", "s3"} {
		if _, err := ec2.NewVpcEndpoint(ctx, svc, &ec2.VpcEndpointArgs{
			VpcId:           n.Vpc.ID(),
			ServiceName:     pulumi.Sprintf("com.amazonaws.%s.%s", region, svc),
			VpcEndpointType: pulumi.String("Gateway"),
			RouteTableIds:   pulumi.StringArray{privateRT.ID()},
			Tags:            tags(cfg, name+"-"+svc),
		}); err != nil {
			return nil, err
		}
	}
	return n, n.securityGroups(ctx, cfg)
}

// securityGroups creates the groups and every rule as its own resource, so that each rule is
// visible (and tested) on its own. No rule admits a CIDR: every ingress names a source group.
func (n *Network) securityGroups(ctx *pulumi.Context, cfg Config) error {
	var err error
	sg := func(role, desc string) (*ec2.SecurityGroup, error) {
		return ec2.NewSecurityGroup(ctx, role, &ec2.SecurityGroupArgs{
			VpcId:       n.Vpc.ID(),
			Description: pulumi.String(desc),
			Tags:        tags(cfg, cfg.ClusterID+"-"+role),
		})
	}
	if n.MasterSG, err = sg("master", "SmartScale K3s master"); err != nil {
		return err
	}
	if n.WorkerSG, err = sg("worker", "SmartScale K3s workers"); err != nil {
		return err
	}
	if n.LambdaSG, err = sg("lambda", "SmartScale autoscaler Lambda"); err != nil {
		return err
	}
	type rule struct {
		name     string
		to, from *ec2.SecurityGroup
		proto    string
		port     int
		desc     string
	}
	rules := []rule{
		{"master-api-from-workers", n.MasterSG, n.WorkerSG, "tcp", kubeAPIPort, "K3s API from workers"},
		{"master-api-from-lambda", n.MasterSG, n.LambdaSG, "tcp", kubeAPIPort, "K3s API from the autoscaler (cordon, drain)"},
		{"master-prometheus-from-lambda", n.MasterSG, n.LambdaSG, "tcp", prometheusNodePort, "Prometheus NodePort from the autoscaler"},
		{"master-vxlan-from-workers", n.MasterSG, n.WorkerSG, "udp", flannelVXLANPort, "flannel VXLAN"},
		{"master-kubelet-from-workers", n.MasterSG, n.WorkerSG, "tcp", kubeletPort, "kubelet (metrics-server)"},
		{"worker-vxlan-from-master", n.WorkerSG, n.MasterSG, "udp", flannelVXLANPort, "flannel VXLAN"},
		{"worker-vxlan-from-workers", n.WorkerSG, n.WorkerSG, "udp", flannelVXLANPort, "flannel VXLAN"},
		{"worker-kubelet-from-master", n.WorkerSG, n.MasterSG, "tcp", kubeletPort, "kubelet from the API server"},
		{"worker-kubelet-from-workers", n.WorkerSG, n.WorkerSG, "tcp", kubeletPort, "kubelet (metrics-server)"},
		{"worker-node-exporter-from-master", n.WorkerSG, n.MasterSG, "tcp", nodeExporterPort, "node-exporter scraped by Prometheus on the master"},
	}
	for _, r := range rules {
		if _, err := vpc.NewSecurityGroupIngressRule(ctx, r.name, &vpc.SecurityGroupIngressRuleArgs{
			SecurityGroupId:           r.to.ID(),
			ReferencedSecurityGroupId: r.from.ID(),
			IpProtocol:                pulumi.String(r.proto),
			FromPort:                  pulumi.Int(r.port),
			ToPort:                    pulumi.Int(r.port),
			Description:               pulumi.String(r.desc),
		}); err != nil {
			return err
		}
	}
	// Egress. Nodes: anything (K3s release, images, AWS APIs through the NAT). The Lambda:
	// HTTPS to the AWS APIs, and the master's API and Prometheus ports only.
	for _, g := range []struct {
		name string
		sg   *ec2.SecurityGroup
	}{{"master-egress-all", n.MasterSG}, {"worker-egress-all", n.WorkerSG}} {
		if _, err := vpc.NewSecurityGroupEgressRule(ctx, g.name, &vpc.SecurityGroupEgressRuleArgs{
			SecurityGroupId: g.sg.ID(), IpProtocol: pulumi.String("-1"), CidrIpv4: pulumi.String("0.0.0.0/0"),
			Description: pulumi.String("all outbound"),
		}); err != nil {
			return err
		}
	}
	if _, err := vpc.NewSecurityGroupEgressRule(ctx, "lambda-egress-https", &vpc.SecurityGroupEgressRuleArgs{
		SecurityGroupId: n.LambdaSG.ID(), IpProtocol: pulumi.String("tcp"), FromPort: pulumi.Int(443), ToPort: pulumi.Int(443),
		CidrIpv4: pulumi.String("0.0.0.0/0"), Description: pulumi.String("AWS APIs through the NAT and gateway endpoints"),
	}); err != nil {
		return err
	}
	for _, e := range []struct {
		name string
		port int
	}{{"lambda-egress-api", kubeAPIPort}, {"lambda-egress-prometheus", prometheusNodePort}} {
		if _, err := vpc.NewSecurityGroupEgressRule(ctx, e.name, &vpc.SecurityGroupEgressRuleArgs{
			SecurityGroupId: n.LambdaSG.ID(), IpProtocol: pulumi.String("tcp"), FromPort: pulumi.Int(e.port), ToPort: pulumi.Int(e.port),
			ReferencedSecurityGroupId: n.MasterSG.ID(), Description: pulumi.String("to the K3s master"),
		}); err != nil {
			return err
		}
	}
	return nil
}

// subnetCidr returns the i-th /20 of a /16 VPC block ("10.40.0.0/16", 1 -> "10.40.16.0/20").
// Validate ensures the block is a /16 and i stays below 16.
func subnetCidr(vpcCidr string, i int) string {
	_, block, _ := net.ParseCIDR(vpcCidr)
	ip := block.IP.To4()
	return fmt.Sprintf("%d.%d.%d.0/20", ip[0], ip[1], i*16)
}

// tags returns the common tags plus a Name.
func tags(cfg Config, name string) pulumi.StringMap {
	return pulumi.StringMap{
		"Name":     pulumi.String(name),
		tagCluster: pulumi.String(cfg.ClusterID),
		"project":  pulumi.String("smartscale"),
	}
}
