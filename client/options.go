package client

// Option modifies one call. Options that do not apply to a call are ignored.
type Option func(*callOptions)

type callOptions struct {
	ifVersion    uint64
	hasIfVersion bool
	version      *uint64
	stale        bool
}

// IfVersion makes a Put or Delete conditional: it applies only if the key's
// current version is v (0 = the key must not exist). On a mismatch the call
// returns a *VersionMismatchError, which matches ErrVersionMismatch.
func IfVersion(v uint64) Option {
	return func(o *callOptions) { o.ifVersion, o.hasIfVersion = v, true }
}

// WithVersion stores in *v the version a Put or Delete wrote, or the version
// a Get read (0 when the key is absent).
func WithVersion(v *uint64) Option {
	return func(o *callOptions) { o.version = v }
}

// Stale lets a Get be served by any replica from its local state, preferring
// a replica on Config.LocalAddr, then the fastest one. The value may lag
// behind the latest write.
func Stale() Option {
	return func(o *callOptions) { o.stale = true }
}

// applyOptions folds opts; without options it does not allocate.
func applyOptions(opts []Option) callOptions {
	if len(opts) == 0 {
		return callOptions{}
	}
	return applyOptionsSlow(opts)
}

func applyOptionsSlow(opts []Option) callOptions {
	o := new(callOptions) // escapes: options are called indirectly
	for _, f := range opts {
		if f != nil {
			f(o)
		}
	}
	return *o
}
