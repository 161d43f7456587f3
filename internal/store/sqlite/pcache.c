//go:build cgo

// A thin wrapper around SQLite's default page cache (pcache1) that skips a whole-cache
// scan SQLite makes at the end of most inserting transactions while the file is under
// 1 GiB. See pcache.go for the why; this file only forwards calls, and keeps two numbers
// per cache to know when a truncation has nothing to drop.
//
// Only SQLite's public pluggable page-cache interface is used (sqlite3_config with
// SQLITE_CONFIG_GETPCACHE2 and SQLITE_CONFIG_PCACHE2, and sqlite3_pcache_methods2, version 1).
// The declarations below copy those of sqlite3.h, because the driver's amalgamation does
// not export its header to other packages; SQLite documents this interface as stable
// (iVersion 1 since 3.7.10), and no internal structure of SQLite is named here.

#include <stdlib.h>

typedef struct sqlite3_pcache sqlite3_pcache;
typedef struct sqlite3_pcache_page {
	void *pBuf;
	void *pExtra;
} sqlite3_pcache_page;
typedef struct sqlite3_pcache_methods2 {
	int iVersion;
	void *pArg;
	int (*xInit)(void *);
	void (*xShutdown)(void *);
	sqlite3_pcache *(*xCreate)(int szPage, int szExtra, int bPurgeable);
	void (*xCachesize)(sqlite3_pcache *, int nCachesize);
	int (*xPagecount)(sqlite3_pcache *);
	sqlite3_pcache_page *(*xFetch)(sqlite3_pcache *, unsigned key, int createFlag);
	void (*xUnpin)(sqlite3_pcache *, sqlite3_pcache_page *, int discard);
	void (*xRekey)(sqlite3_pcache *, sqlite3_pcache_page *, unsigned oldKey, unsigned newKey);
	void (*xTruncate)(sqlite3_pcache *, unsigned iLimit);
	void (*xDestroy)(sqlite3_pcache *);
	void (*xShrink)(sqlite3_pcache *);
} sqlite3_pcache_methods2;

int sqlite3_config(int, ...);
#define LH_SQLITE_OK 0
#define LH_SQLITE_CONFIG_PCACHE2 18
#define LH_SQLITE_CONFIG_GETPCACHE2 19

// SQLite's PENDING_BYTE: the byte offset of the locking range, 1 GiB in every build that
// can share a file with other SQLite processes (only test builds move it).
#define LH_PENDING_BYTE 0x40000000u

static sqlite3_pcache_methods2 inner;

// lh_cache is what SQLite holds as a cache: the inner cache and what is known of its keys.
// A cache belongs to one connection's pager, whose mutex SQLite holds around every call, so
// its fields need no lock of their own; only truncatesSkipped is shared, hence atomic.
typedef struct lh_cache {
	sqlite3_pcache *inner;
	unsigned lockPage; // the page holding PENDING_BYTE, never a real page of the file
	unsigned maxKey;   // no page has a key above this, the lock page aside
	unsigned parked;   // pages moved to the lock page number and not yet moved away
} lh_cache;

static long long truncatesSkipped;

static int lhInit(void *arg) { return inner.xInit(inner.pArg); }
static void lhShutdown(void *arg) { inner.xShutdown(inner.pArg); }

static sqlite3_pcache *lhCreate(int szPage, int szExtra, int bPurgeable) {
	lh_cache *c = malloc(sizeof *c);
	if (c == NULL) return NULL;
	c->inner = inner.xCreate(szPage, szExtra, bPurgeable);
	if (c->inner == NULL) {
		free(c);
		return NULL;
	}
	c->lockPage = LH_PENDING_BYTE / (unsigned)szPage + 1;
	c->maxKey = 0;
	c->parked = 0;
	return (sqlite3_pcache *)c;
}

static void lhCachesize(sqlite3_pcache *p, int n) { inner.xCachesize(((lh_cache *)p)->inner, n); }
static int lhPagecount(sqlite3_pcache *p) { return inner.xPagecount(((lh_cache *)p)->inner); }
static void lhShrink(sqlite3_pcache *p) { inner.xShrink(((lh_cache *)p)->inner); }

static sqlite3_pcache_page *lhFetch(sqlite3_pcache *p, unsigned key, int createFlag) {
	lh_cache *c = (lh_cache *)p;
	sqlite3_pcache_page *pg = inner.xFetch(c->inner, key, createFlag);
	if (pg != NULL && key > c->maxKey) c->maxKey = key;
	return pg;
}

static void lhUnpin(sqlite3_pcache *p, sqlite3_pcache_page *pg, int discard) {
	inner.xUnpin(((lh_cache *)p)->inner, pg, discard);
}

// B-tree balancing renumbers pages in three moves, parking one at the lock page number in
// between. pcache1 then remembers the lock page as its largest key and, at the end of the
// transaction, scans its whole hash table for pages past the end of the file.
static void lhRekey(sqlite3_pcache *p, sqlite3_pcache_page *pg, unsigned oldKey, unsigned newKey) {
	lh_cache *c = (lh_cache *)p;
	inner.xRekey(c->inner, pg, oldKey, newKey);
	if (oldKey == c->lockPage && c->parked > 0) c->parked--;
	if (newKey == c->lockPage) {
		c->parked++;
	} else if (newKey > c->maxKey) {
		c->maxKey = newKey;
	}
}

// A truncation drops the pages numbered iLimit and above. When the keys above say there
// are none, it has nothing to do; otherwise it goes through, as it would without the
// wrapper. (A page parked at the lock page number and discarded there keeps parked above
// zero: that only sends truncations through.)
static void lhTruncate(sqlite3_pcache *p, unsigned iLimit) {
	lh_cache *c = (lh_cache *)p;
	if (iLimit > c->maxKey && (c->parked == 0 || iLimit > c->lockPage)) {
		__atomic_add_fetch(&truncatesSkipped, 1, __ATOMIC_RELAXED);
		return;
	}
	inner.xTruncate(c->inner, iLimit);
	if (iLimit > 0 && iLimit - 1 < c->maxKey) c->maxKey = iLimit - 1;
	if (iLimit <= c->lockPage) c->parked = 0;
}

static void lhDestroy(sqlite3_pcache *p) {
	lh_cache *c = (lh_cache *)p;
	inner.xDestroy(c->inner);
	free(c);
}

// lhInstallPageCache puts the wrapper in place. It must run before SQLite initializes (the
// first connection opened): afterwards sqlite3_config refuses, and the default stays.
int lhInstallPageCache(void) {
	int rc = sqlite3_config(LH_SQLITE_CONFIG_GETPCACHE2, &inner);
	if (rc != LH_SQLITE_OK) return rc;
	if (inner.xInit == NULL) return -1;
	static const sqlite3_pcache_methods2 wrapper = {
		1, NULL, lhInit, lhShutdown, lhCreate, lhCachesize, lhPagecount, lhFetch,
		lhUnpin, lhRekey, lhTruncate, lhDestroy, lhShrink,
	};
	return sqlite3_config(LH_SQLITE_CONFIG_PCACHE2, &wrapper);
}

long long lhTruncatesSkipped(void) { return __atomic_load_n(&truncatesSkipped, __ATOMIC_RELAXED); }

// lhCheckKeyTracking drives one cache through the wrapper as the pager would, for the
// tests: a page renumbered past the largest key, and one parked at the lock page number,
// must both be dropped by a truncation below them, and a swap through the lock page must
// leave a truncation past the end skipped. It returns 0 when all hold, else the step that
// failed. SQLite must be initialized (a connection opened) before.
int lhCheckKeyTracking(void) {
	int failed = 0;
	sqlite3_pcache *c = lhCreate(4096, 64, 1);
	if (c == NULL) return 1;
	lhCachesize(c, 100);
	sqlite3_pcache_page *pg = lhFetch(c, 5, 2);
	if (pg == NULL) failed = 2;
	if (!failed) {
		lhRekey(c, pg, 5, 9); // as balancing does: a key above any fetched
		lhUnpin(c, pg, 0);
		lhTruncate(c, 6);
		if (lhPagecount(c) != 0) failed = 3;
	}
	if (!failed && (pg = lhFetch(c, 3, 2)) == NULL) failed = 4;
	if (!failed) {
		lhRekey(c, pg, 3, ((lh_cache *)c)->lockPage);
		lhUnpin(c, pg, 0);
		lhTruncate(c, 6);
		if (lhPagecount(c) != 0) failed = 5;
	}
	// And what the wrapper is for: two pages swapped through the lock page number, as
	// balancing swaps them, leave nothing past the end, so a truncation there is skipped.
	sqlite3_pcache_page *a = NULL, *b = NULL;
	if (!failed && ((a = lhFetch(c, 2, 2)) == NULL || (b = lhFetch(c, 4, 2)) == NULL)) failed = 6;
	if (!failed) {
		unsigned lock = ((lh_cache *)c)->lockPage;
		long long skipped = lhTruncatesSkipped();
		lhRekey(c, a, 2, lock);
		lhRekey(c, b, 4, 2);
		lhRekey(c, a, lock, 4);
		lhUnpin(c, a, 0);
		lhUnpin(c, b, 0);
		lhTruncate(c, 6);
		if (lhTruncatesSkipped() != skipped + 1 || lhPagecount(c) != 2) failed = 7;
	}
	lhDestroy(c);
	return failed;
}
