package httpgate

import (
	"container/list"
	"net/http"
	"sync"
	"time"
)

// Entry is a stored response.
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
