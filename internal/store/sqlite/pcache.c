// A thin wrapper around SQLite's default page cache (pcache1) that skips a whole-cache
// scan SQLite makes at the end of most inserting transactions while the file is under
// 1 GiB. See pcache.go for the why; this file only forwards calls, and keeps two numbers
// per cache to know when a truncation has nothing to drop.
//
// Only the public pluggable page-cache interface (sqlite3_pcache_methods2) is used, so the
// declarations below are those of sqlite3.h, whose layout SQLite keeps stable.

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
