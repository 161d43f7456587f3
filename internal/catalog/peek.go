package catalog

// Peek returns the tenant's snapshot as last loaded by Get, without reading the store and
// without waiting for a reload in progress (nil when Get never loaded it). It suits code
// running inside a store transaction, where opening another one could wait for a
// connection that transaction's caller holds; that caller loaded the snapshot with Get
// just before.
func (c *Cache) Peek(tenant string) *Snapshot {
	c.mu.Lock()
	e := c.tenants[tenant]
	c.mu.Unlock()
	if e == nil {
		return nil
	}
	return e.peek.Load()
}
