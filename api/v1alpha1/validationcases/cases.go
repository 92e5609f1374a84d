// Package validationcases lists invalid SyncGroup specs and what the
// validation must say about each, shared by the API server's tests
// (envtest) and standalone mode's tests, so that both are held to the same
// messages.
package validationcases

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
)

// Case is one invalid spec: Mutate breaks a valid MembersGroup, Want are
// substrings the validation error must contain.
type Case struct {
	Name   string
	Mutate func(*syncv1.SyncGroupSpec)
	Want   []string
}

// MembersGroup is a valid SyncGroup that lists its members, each with an
// address (valid in a cluster and in standalone mode).
func MembersGroup(name string) *syncv1.SyncGroup {
	return &syncv1.SyncGroup{
		TypeMeta:   metav1.TypeMeta{APIVersion: syncv1.GroupVersion.String(), Kind: "SyncGroup"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: syncv1.SyncGroupSpec{
			Path: "/data/www",
			Members: []syncv1.Member{
				{Node: "web-1", Address: "127.0.0.2:7873"},
				{Node: "web-2", Address: "127.0.0.3:7873"},
				{Node: "web-3.example.org", Address: "[fd00::2]:7873"},
			},
		},
	}
}

func nodes(n int) []syncv1.Member {
	ms := make([]syncv1.Member, n)
	for i := range ms {
		ms[i] = syncv1.Member{Node: fmt.Sprintf("node-%d", i), Address: fmt.Sprintf("127.0.1.%d:7873", i+1)}
	}
	return ms
}

// Invalid returns the invalid specs.
func Invalid() []Case {
	return []Case{
		{"relative path", func(s *syncv1.SyncGroupSpec) { s.Path = "data/www" },
			[]string{"spec.path", "path must be absolute"}},
		{"root path", func(s *syncv1.SyncGroupSpec) { s.Path = "/" },
			[]string{"path must not be /"}},
		{"double slash", func(s *syncv1.SyncGroupSpec) { s.Path = "/data//www" },
			[]string{"replace // with /"}},
		{"dot component", func(s *syncv1.SyncGroupSpec) { s.Path = "/data/./www" },
			[]string{"remove the /. components"}},
		{"trailing dot", func(s *syncv1.SyncGroupSpec) { s.Path = "/data/www/." },
			[]string{"remove the /. components"}},
		{"dot-dot component", func(s *syncv1.SyncGroupSpec) { s.Path = "/data/../etc" },
			[]string{"remove the /.. components"}},
		{"trailing dot-dot", func(s *syncv1.SyncGroupSpec) { s.Path = "/data/www/.." },
			[]string{"remove the /.. components"}},
		{"trailing slash", func(s *syncv1.SyncGroupSpec) { s.Path = "/data/www/" },
			[]string{"remove the trailing slash"}},
		{"path over 1023 characters", func(s *syncv1.SyncGroupSpec) { s.Path = "/" + strings.Repeat("a", 1023) },
			[]string{"spec.path", "1023"}},
		{"path over 1023 bytes in fewer characters", func(s *syncv1.SyncGroupSpec) { s.Path = "/" + strings.Repeat("é", 600) },
			[]string{"path must be at most 1023 bytes"}},
		{"newline in path", func(s *syncv1.SyncGroupSpec) { s.Path = "/data/w\nww" },
			[]string{"path must not contain control characters"}},
		{"path ending in a space", func(s *syncv1.SyncGroupSpec) { s.Path = "/data/www " },
			[]string{"path must not end with a space"}},
		{"path ending in a backslash", func(s *syncv1.SyncGroupSpec) { s.Path = `/data/www\` },
			[]string{"path must not end with a backslash"}},
		{"path with an environment reference", func(s *syncv1.SyncGroupSpec) { s.Path = "/data/%HOME%" },
			[]string{"path must not hold % before a capital"}},
		{"path with % before a non-ASCII letter", func(s *syncv1.SyncGroupSpec) { s.Path = "/data/%É" },
			[]string{"path must not hold % before a capital"}},
		{"both members and replicas", func(s *syncv1.SyncGroupSpec) {
			s.Replicas = ptr.To[int32](2)
			s.NodeSelector = &metav1.LabelSelector{}
		}, []string{"set exactly one of members"}},
		{"neither members nor replicas", func(s *syncv1.SyncGroupSpec) { s.Members = nil },
			[]string{"set exactly one of members"}},
		{"duplicate member node", func(s *syncv1.SyncGroupSpec) { s.Members[1].Node = "web-1"; s.Members[1].Address = "" },
			[]string{"spec.members", "members must name each node once"}},
		{"one member", func(s *syncv1.SyncGroupSpec) { s.Members = s.Members[:1] },
			[]string{"spec.members", "at least 2 items"}},
		{"a node name over 238 characters", func(s *syncv1.SyncGroupSpec) {
			s.Members[0].Node = strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 49)
		},
			[]string{"spec.members[0].node", "node must be at most 238 characters"}},
		{"33 members", func(s *syncv1.SyncGroupSpec) { s.Members = nodes(33) },
			[]string{"spec.members", "at most 32 items"}},
		{"one replica", func(s *syncv1.SyncGroupSpec) {
			s.Members = nil
			s.Replicas = ptr.To[int32](1)
			s.NodeSelector = &metav1.LabelSelector{}
		}, []string{"spec.replicas", "greater than or equal to 2"}},
		{"33 replicas", func(s *syncv1.SyncGroupSpec) {
			s.Members = nil
			s.Replicas = ptr.To[int32](33)
			s.NodeSelector = &metav1.LabelSelector{}
		}, []string{"spec.replicas", "less than or equal to 32"}},
		{"replicas without nodeSelector", func(s *syncv1.SyncGroupSpec) { s.Members = nil; s.Replicas = ptr.To[int32](2) },
			[]string{"replicas needs a nodeSelector"}},
		{"nodeSelector with members", func(s *syncv1.SyncGroupSpec) { s.NodeSelector = &metav1.LabelSelector{} },
			[]string{"nodeSelector only applies with replicas"}},
		{"node name with capitals and underscore", func(s *syncv1.SyncGroupSpec) { s.Members[0].Node = "Web_1" },
			[]string{"node must be a DNS-1123 subdomain"}},
		{"address that is a host name", func(s *syncv1.SyncGroupSpec) { s.Members[0].Address = "web-1.example.org:7873" },
			[]string{"address must be an IP literal and a port", "host names are refused"}},
		{"address without port", func(s *syncv1.SyncGroupSpec) { s.Members[0].Address = "127.0.0.2" },
			[]string{"address must be an IP literal and a port"}},
		{"IPv6 address without brackets", func(s *syncv1.SyncGroupSpec) { s.Members[0].Address = "fd00::2:7873" },
			[]string{"address must be an IP literal and a port"}},
		{"address with invalid IPv4", func(s *syncv1.SyncGroupSpec) { s.Members[0].Address = "300.0.0.2:7873" },
			[]string{"address must hold the member's own IP address"}},
		{"IPv4 address in brackets", func(s *syncv1.SyncGroupSpec) { s.Members[0].Address = "[127.0.0.2]:7873" },
			[]string{"address must hold the member's own IP address"}},
		{"unspecified address", func(s *syncv1.SyncGroupSpec) { s.Members[0].Address = "0.0.0.0:7873" },
			[]string{"not 0.0.0.0 or ::"}},
		{"port 0", func(s *syncv1.SyncGroupSpec) { s.Members[0].Address = "127.0.0.2:0" },
			[]string{"address port must be between 1 and 65533"}},
		{"port 70000", func(s *syncv1.SyncGroupSpec) { s.Members[0].Address = "[fd00::2]:70000" },
			[]string{"address port must be between 1 and 65533"}},
		{"port 65534, whose next port is the last", func(s *syncv1.SyncGroupSpec) { s.Members[0].Address = "127.0.0.2:65534" },
			[]string{"address port must be between 1 and 65533", "the agent also listens on the next two ports"}},
		{"port 65535", func(s *syncv1.SyncGroupSpec) { s.Members[1].Address = "[fd00::3]:65535" },
			[]string{"address port must be between 1 and 65533"}},
		{"members sharing an address", func(s *syncv1.SyncGroupSpec) { s.Members[1].Address = s.Members[0].Address },
			[]string{"members must not share an address"}},
		{"jail name with a slash", func(s *syncv1.SyncGroupSpec) { s.Jail = "/usr/jails/web" },
			[]string{"jail must be a jail name, not a path"}},
		{"negative settle", func(s *syncv1.SyncGroupSpec) { s.Settle = &metav1.Duration{Duration: -time.Second} },
			[]string{"settle must be a duration", "without a sign"}},
		{"settle over 1h", func(s *syncv1.SyncGroupSpec) { s.Settle = &metav1.Duration{Duration: 2 * time.Hour} },
			[]string{"settle must be at most 1h"}},
		{"resyncInterval under 1m", func(s *syncv1.SyncGroupSpec) { s.ResyncInterval = &metav1.Duration{Duration: 30 * time.Second} },
			[]string{"resyncInterval must be 0 (disabled) or between 1m and 720h"}},
		{"resyncInterval over 720h", func(s *syncv1.SyncGroupSpec) { s.ResyncInterval = &metav1.Duration{Duration: 1000 * time.Hour} },
			[]string{"resyncInterval must be 0 (disabled) or between 1m and 720h"}},
		{"unknown deletes policy", func(s *syncv1.SyncGroupSpec) { s.Deletes = "Sometimes" },
			[]string{"spec.deletes", `supported values: "Propagate", "Keep"`}},
		{"unknown conflicts policy", func(s *syncv1.SyncGroupSpec) { s.Conflicts = "OldestWins" },
			[]string{"spec.conflicts", `supported values: "NewestWins"`}},
		{"bandwidthLimit under 1Ki", func(s *syncv1.SyncGroupSpec) { s.Transport.BandwidthLimit = ptr.To(resource.MustParse("512")) },
			[]string{"bandwidthLimit must be at least 1Ki"}},
		{"secretRef name that is not a Secret name", func(s *syncv1.SyncGroupSpec) {
			s.Transport.SecretRef = &syncv1.SecretReference{Name: "My Secret"}
		}, []string{"secretRef.name must be a Secret name"}},
		{"exclude pattern with a rule prefix", func(s *syncv1.SyncGroupSpec) { s.Exclude = []syncv1.ExcludePattern{"- *.tmp"} },
			[]string{"exclude takes patterns, not filter rules"}},
		{"exclude pattern with a line break", func(s *syncv1.SyncGroupSpec) { s.Exclude = []syncv1.ExcludePattern{"*.tmp\n*.log"} },
			[]string{"exclude patterns are one line each"}},
	}
}
