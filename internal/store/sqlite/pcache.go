package sqlite

// int lhInstallPageCache(void);
// long long lhTruncatesSkipped(void);
import "C"

// SQLite's B-tree balancing renumbers the pages it splits into ascending order through a
// spare page number: the page that holds the file's lock byte, at 1 GiB, which no file
// under 1 GiB reaches. The default page cache then takes that number for its largest key
// and, when the transaction ends, scans every slot of its hash table for pages past the
// end of the file: with the writer's 64 MiB cache, 16,384 slots and as many cache misses,
// in most commits of a load that inserts into random places of an index (a new seat does,
// in three before migration 7, in two since). Profiled, the scan was 8 % of the server's CPU for new seats and an eighth of
// the single writer's time. pcache.c wraps the default cache and lets a truncation through
// only when a page can be past its limit; the default cache does all the rest.

// pageCacheInstalled is the result of installing the wrapper: 0 when it is in place. It is
// installed when the package initializes, before any connection has initialized SQLite
// (sqlite3_config refuses afterwards, and SQLite keeps its own cache then, as correct).
var pageCacheInstalled = int(C.lhInstallPageCache())

// truncatesSkipped counts the truncations the wrapper found nothing to drop for.
func truncatesSkipped() int64 { return int64(C.lhTruncatesSkipped()) }
