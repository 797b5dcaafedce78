package ring

import "errors"

var (
	// ErrInvalidMap is wrapped by every error that [Map.Validate],
	// [FromProto] and [NewMap] return for a malformed cluster map.
	ErrInvalidMap = errors.New("ring: invalid cluster map")

	// ErrOtherCluster is wrapped by the error [Membership.Join] returns when a
	// peer advertises a cluster ID different from this node's.
	ErrOtherCluster = errors.New("ring: peer belongs to another cluster")

	// ErrMetaTooLarge is returned when encoded member metadata exceeds
	// [MaxMetaSize] bytes, the most memberlist will gossip.
	ErrMetaTooLarge = errors.New("ring: member metadata too large")

	// ErrBadMeta is wrapped by [DecodeMemberMeta] errors for malformed
	// member metadata.
	ErrBadMeta = errors.New("ring: malformed member metadata")
)

// ErrMembershipClosed is returned by [Membership] methods called after
// [Membership.Shutdown].
var ErrMembershipClosed = errors.New("ring: membership is shut down")
