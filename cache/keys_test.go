package cache

import (
	"math/rand/v2"
	"testing"
)

func TestCRC16IsRedisClusters(t *testing.T) {
	// The check value of CRC-16/XMODEM, and slots the Redis Cluster
	// specification and CLUSTER KEYSLOT give.
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	for key, want := range map[string]int{"foo": 12182, "bar": 5061, "{user1000}.following": 3443, "{user1000}.followers": 3443, "foo{}{bar}": 8363, "foo{{bar}}zap": 4015, "foo{bar}{zap}": 5061} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestVersionKeySharesItsKeysSlot(t *testing.T) {
	for key, want := range map[string]string{
		"user:1":         "lockstep:v:{user:1}",
		"user:{42}:name": "lockstep:v:user:{42}:name",
		"user:email:a{b": "lockstep:v:{user:email:a{b}",
		"user:email:a}b": "lockstep:v:{" + SlotTag(Slot("user:email:a}b")) + "}user:email:a}b",
		"x{}y":           "lockstep:v:{" + SlotTag(Slot("x{}y")) + "}x{}y",
		"":               "lockstep:v:{" + SlotTag(0) + "}",
	} {
		if got := VersionKey(key); got != want {
			t.Errorf("VersionKey(%q) = %q, want %q", key, got, want)
		}
	}
	// Generated keys, braces frequent among their bytes.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab:{}{}}0\x00\xff")
	for range 200000 {
		k := make([]byte, rng.IntN(12))
		for i := range k {
			k[i] = alphabet[rng.IntN(len(alphabet))]
		}
		key := string(k)
		if v := VersionKey(key); Slot(v) != Slot(key) {
			t.Fatalf("VersionKey(%q) = %q is in slot %d, the key in %d", key, v, Slot(v), Slot(key))
		}
	}
}

func TestEverySlotHasATag(t *testing.T) {
	for s := range Slots {
		tag := SlotTag(s)
		if tag == "" || Slot(tag) != s {
			t.Fatalf("SlotTag(%d) = %q, in slot %d", s, tag, Slot(tag))
		}
	}
}
