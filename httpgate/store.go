package httpgate

import (
	"container/list"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sockstap/sockstap/internal/httpcache"
)

// Entry is a stored response.
//
// Beside its fields, an Entry the cache made keeps what the cache worked
// out of them when it stored the entry (its age, its freshness lifetime),
// so that a hit parses none of its fields again. A Store that hands back
// the *Entry it was given keeps that; an Entry made otherwise (a Store
// that decodes its entries, say) is worked out on each use, with the same
// result.
type Entry struct {
	Status int
	Header http.Header // the response's fields, as stored (no hop-by-hop fields)
	Body   []byte

	// Selecting is the request's values of the fields that the
	// response's Vary names: what a later request must match.
	Selecting http.Header

	// RequestTime is when the request that brought the response was
	// sent, ResponseTime when the response arrived: the age calculation's
	// request_time and response_time (RFC 9111, section 4.2.3).
	RequestTime, ResponseTime time.Time

	meta *entryMeta // set by newEntry; nil in an Entry made otherwise
}

// entryMeta is what the cache works out of an entry's fields.
type entryMeta struct {
	fresh  httpcache.Stored
	length []string // the Content-Length field of the body: its length
}

// newEntry returns an entry with what the cache needs of it worked out.
// The cache changes none of its fields afterwards.
func newEntry(status int, header, selecting http.Header, sent, received time.Time, body []byte) *Entry {
	e := &Entry{Status: status, Header: header, Body: body, Selecting: selecting, RequestTime: sent, ResponseTime: received}
	m := e.work()
	e.meta = &m
	return e
}

// work works out what the cache needs of e's fields.
func (e *Entry) work() entryMeta {
	return entryMeta{
		fresh:  httpcache.NewStored(e.Status, e.Header, e.RequestTime, e.ResponseTime),
		length: []string{strconv.Itoa(len(e.Body))},
	}
}

// worked returns what the cache worked out of e's fields when it stored
// e, or works it out now for an Entry the cache did not make.
func (e *Entry) worked() *entryMeta {
	if e.meta != nil {
		return e.meta
	}
	m := e.work()
	return &m
}

// Size is about how many bytes e takes in memory.
func (e *Entry) Size() int64 {
	n := int64(len(e.Body)) + 64
	for _, h := range []http.Header{e.Header, e.Selecting} {
		for k, v := range h {
			n += int64(len(k)) + 16
			for _, s := range v {
				n += int64(len(s)) + 16
			}
		}
	}
	return n
}

// A Store holds the cache's responses: under each key, the variants of
// one resource (one per combination of the fields its Vary names). A
// store may forget anything at any time. Entries are never changed once
// stored: the cache stores new ones.
type Store interface {
	// Get returns the variants stored under key.
	Get(key string) []*Entry
	// Set replaces the variants stored under key; none deletes the key.
	Set(key string, variants []*Entry)
}

// MemoryStore is a Store in memory, bounded by bytes: past its size, the
// least recently used keys are dropped. It is safe for concurrent use.
type MemoryStore struct {
	max int64

	mu    sync.Mutex
	size  int64
	lru   *list.List // of *memItem, most recently used first
	items map[string]*list.Element
}

type memItem struct {
	key      string
	variants []*Entry
	size     int64
}

// NewMemoryStore returns a store that holds at most maxBytes.
func NewMemoryStore(maxBytes int64) *MemoryStore {
	return &MemoryStore{max: maxBytes, lru: list.New(), items: make(map[string]*list.Element)}
}

// Get returns the variants stored under key, and marks them used.
func (s *MemoryStore) Get(key string) []*Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.items[key]
	if !ok {
		return nil
	}
	s.lru.MoveToFront(el)
	return el.Value.(*memItem).variants
}

// Set replaces the variants under key, dropping the least recently used
// keys while the store is over its size. A key whose variants alone are
// over the size is not stored.
func (s *MemoryStore) Set(key string, variants []*Entry) {
	size := int64(len(key))
	for _, e := range variants {
		size += e.Size()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[key]; ok {
		s.remove(el)
	}
	if len(variants) == 0 || size > s.max {
		return
	}
	s.items[key] = s.lru.PushFront(&memItem{key: key, variants: variants, size: size})
	s.size += size
	for s.size > s.max {
		s.remove(s.lru.Back())
	}
}

func (s *MemoryStore) remove(el *list.Element) {
	it := s.lru.Remove(el).(*memItem)
	delete(s.items, it.key)
	s.size -= it.size
}

// Len returns the number of keys stored, and their size in bytes.
func (s *MemoryStore) Len() (keys int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items), s.size
}
