//go:build cgo

package sqlite

// int lhInstallPageCache(void);
// long long lhTruncatesSkipped(void);
// int lhCheckKeyTracking(void);
import "C"

// SQLite's B-tree balancing renumbers the pages it splits into ascending order through a
// spare page number: the page that holds the file's lock byte, at 1 GiB, which no file
// under 1 GiB reaches. The default page cache then takes that number for its largest key
// and, when the transaction ends, scans every slot of its hash table for pages past the
// end of the file: with the writer's 64 MiB cache, 16,384 slots and as many cache misses,
// in most commits of a load that inserts into random places of an index (a new seat does,
// in two: the seat's key and the lease's seat-and-session key). Profiled, the scan was 8 %
// of the server's CPU for new seats and an eighth of the single writer's time. Without it
// a new seat costs the server 0.96× the CPU and a token grant 0.88× (medians of alternating
// runs, BENCHMARKS.md, "The SQLite page-cache wrapper, again"). pcache.c wraps the default cache
// and lets a truncation through only when a page can be past its limit; the default cache
// does all the rest. The cgo-free driver (driver_nocgo.go) has no such hook and keeps the
// scan.

// pageCacheInstalled is the result of installing the wrapper: 0 when it is in place. It is
// installed when the package initializes, before any connection has initialized SQLite
// (sqlite3_config refuses afterwards, and SQLite keeps its own cache then, as correct).
var pageCacheInstalled = int(C.lhInstallPageCache())

// truncatesSkipped counts the truncations the wrapper found nothing to drop for.
func truncatesSkipped() int64 { return int64(C.lhTruncatesSkipped()) }

// checkKeyTracking runs pcache.c's own check of the keys it tracks (0: as it should).
func checkKeyTracking() int { return int(C.lhCheckKeyTracking()) }
