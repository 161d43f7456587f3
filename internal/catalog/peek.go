package catalog

// Peek returns the tenant's snapshot as last loaded by Get, without reading the store and
// without taking a lock (nil when Get never loaded it). It suits code running inside a
// store transaction that holds row locks: waiting there for the cache's mutex, which
// Tenants holds across a store read, would stall every transaction queued on those locks.
// The caller of the transaction loaded the snapshot with Get just before.
func (c *Cache) Peek(tenant string) *Snapshot {
	if v, ok := c.peeks.Load(tenant); ok {
		return v.(*Snapshot)
	}
	return nil
}
