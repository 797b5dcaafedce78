package chaos

import (
	"testing"
	"time"
)

// TestChaos_JoinAndKillDuringMove: under load, a node joins a 3-node
// cluster and, while the replica moves toward it are in flight, the joiner
// or another node is SIGKILLed, held down past --dead-node-grace so its
// replicas may be replaced, and restarted; then an original node is drained,
// removed and stopped. The usual checks follow, and every shard must be back
// at RF voters on active nodes, hosted where the cluster map says.
func TestChaos_JoinAndKillDuringMove(t *testing.T) {
	r := newRunWith(t, runOptions{nodes: 3, extra: deadNodeGrace})
	r.faultCycle(faultKillDuringMove, 4*time.Second)
	r.faultCycle(faultDrain, 2*time.Second)
	r.finish()
}
