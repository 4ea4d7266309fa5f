// The kernel/user ABI (bpf/unlinkd.h): layouts both compilers must agree on.
// The BPF side is compiled by clang for the bpf target, this side by g++ for
// x86-64; these asserts pin the sizes and offsets both must produce.
#include <catch2/catch.hpp>

#include <cstddef>

#include "unlinkd.h"

static_assert(sizeof(unlinkd_claim) == 48);
static_assert(offsetof(unlinkd_claim, attachment) == 28);
static_assert(offsetof(unlinkd_config, retiring_attachment) == 20);
static_assert(sizeof(unlinkd_process_key) == 16);
static_assert(offsetof(unlinkd_process_key, start_ns) == 8);
static_assert(offsetof(unlinkd_claim, tgid) == 32);
static_assert(offsetof(unlinkd_claim, op) == 40);
static_assert(offsetof(unlinkd_claim, key_known) == 41);
static_assert(sizeof(unlinkd_process) == 72);
static_assert(offsetof(unlinkd_process, pid) == 40);
static_assert(offsetof(unlinkd_process, comm) == 48);
static_assert(offsetof(unlinkd_process, loginuid) == 64);
static_assert(sizeof(unlinkd_totals) == (10 + 2 * UNLINKD_CLAIM_SLOTS) * 8);
static_assert((UNLINKD_CLAIM_SLOTS & (UNLINKD_CLAIM_SLOTS - 1)) == 0, "a mask picks the slot");
static_assert(sizeof(unlinkd_filter_key) == 24);
static_assert(offsetof(unlinkd_filter_key, value) == 8);
static_assert(sizeof(unlinkd_name_hash) == 16);
static_assert(sizeof(unlinkd_filter_meta) == 8);
static_assert(sizeof(unlinkd_config) == 40 + 8 * UNLINKD_FILTER_META_SLOTS);
static_assert(UNLINKD_FILTER_META_SLOTS > UNLINKD_FILTER_GENERATIONS, "a live generation's slot is never reused");
static_assert((UNLINKD_FILTER_META_SLOTS & (UNLINKD_FILTER_META_SLOTS - 1)) == 0);
static_assert(offsetof(unlinkd_config, cgroupns_root_id) == 32);
static_assert(offsetof(unlinkd_config, stream_per_sec) == 24);
static_assert(offsetof(unlinkd_config, abi_version) == 28);
static_assert(sizeof(unlinkd_stream_budget) == 16);
static_assert(offsetof(unlinkd_claim, unstreamed) == 39);
static_assert(sizeof(unlinkd_entry_record) == 80);
static_assert(sizeof(unlinkd_entry_record) % 8 == 0, "data[] starts 8-aligned");
static_assert(offsetof(unlinkd_entry_record, time_ns) == 8);
static_assert(offsetof(unlinkd_entry_record, pid) == 24);
static_assert(offsetof(unlinkd_entry_record, given_len) == 44);
static_assert(offsetof(unlinkd_entry_record, exe_len) == 50);
static_assert(offsetof(unlinkd_entry_record, comm) == 52);
static_assert(offsetof(unlinkd_entry_record, loginuid) == 68);
static_assert(offsetof(unlinkd_entry_record, sessionid) == 72);
static_assert(UNLINKD_RECORD_DATA_MAX == 3 * 4095 + 511);
static_assert(UNLINKD_OP_UNLINK == 0 && UNLINKD_OP_RMDIR == 1);
static_assert(UNLINKD_FILTER_LOGINUID == 6 && UNLINKD_FILTER_OP == 7);
static_assert(UNLINKD_FILTER_FIELD_COUNT <= 32, "field bits fit unlinkd_filter_meta");
static_assert(UNLINKD_ID_UNSET == 4294967295u);
static_assert(sizeof(unlinkd_exit_record) == 16);
static_assert(offsetof(unlinkd_exit_record, result) == 8);
static_assert(UNLINKD_COMM_LEN == 16);
static_assert(UNLINKD_PATH_MAX == 4095);
static_assert((UNLINKD_MAX_DIR_DEPTH & (UNLINKD_MAX_DIR_DEPTH - 1)) == 0, "masked index");
static_assert((UNLINKD_MAX_COMPONENTS & (UNLINKD_MAX_COMPONENTS - 1)) == 0, "masked index");
static_assert((UNLINKD_MAX_CGROUP_DEPTH & (UNLINKD_MAX_CGROUP_DEPTH - 1)) == 0, "masked index");
static_assert(UNLINKD_MODE_COUNT == 3);

TEST_CASE("record kinds are distinct and non-zero", "[abi]")
{
    REQUIRE(UNLINKD_RECORD_ENTRY != UNLINKD_RECORD_EXIT);
    REQUIRE(UNLINKD_RECORD_ENTRY != 0);
    REQUIRE(UNLINKD_RECORD_EXIT != 0);
}
