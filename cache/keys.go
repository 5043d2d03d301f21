package cache

import (
	"strconv"
	"strings"
	"sync"
)

// VersionKey is where lockstep keeps the version of a cached key: the
// position, in primary commit order, of the last change written to it.
//
// On Redis Cluster a guarded write touches a key and its version key in one
// script, so the two must hash to the same slot. The version key is named so
// that they do, for every key:
//
//	key has a hash tag ({...} with something inside): lockstep:v:<key>         same tag
//	key has no '}' (and is not empty):                lockstep:v:{<key>}       the key is the tag
//	otherwise:                                        lockstep:v:{<t>}<key>    t: SlotTag(Slot(key))
//
// (A key such as user:email:a}b cannot be a tag of its own: the tag would
// end at its '}'.) A single Redis uses the same names.
func VersionKey(key string) string {
	if _, ok := hashTag(key); ok {
		return "lockstep:v:" + key
	}
	if key != "" && !strings.Contains(key, "}") {
		return "lockstep:v:{" + key + "}"
	}
	return "lockstep:v:{" + SlotTag(Slot(key)) + "}" + key
}

// Slots is how many hash slots Redis Cluster has.
const Slots = 16384

// Slot is the Redis Cluster hash slot of a key: CRC16 of its hash tag when
// it has one, of the whole key otherwise, modulo Slots.
func Slot(key string) int {
	if tag, ok := hashTag(key); ok {
		key = tag
	}
	return int(crc16(key) % Slots)
}

// hashTag is what Redis Cluster hashes instead of the whole key: what lies
// between the first '{' and the first '}' after it, when that is not empty.
func hashTag(key string) (string, bool) {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return "", false
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return "", false
	}
	return key[open+1 : open+1+end], true
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), the checksum Redis
// Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

var slotTags struct {
	once sync.Once
	tags [Slots]string
}

// SlotTag is the first decimal number, in counting order, whose CRC16 falls
// in slot: a hash tag that puts a key in that slot. Other languages compute
// the same table by counting 0, 1, 2, ... until every slot has its number.
func SlotTag(slot int) string {
	slotTags.once.Do(func() {
		for n, left := 0, Slots; left > 0; n++ {
			s := strconv.Itoa(n)
			if i := crc16(s) % Slots; slotTags.tags[i] == "" {
				slotTags.tags[i] = s
				left--
			}
		}
	})
	return slotTags.tags[slot]
}
