#include "journal_sink.h"

#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include <string>
#include <vector>

#include "core/journal_fields.h"

namespace unlinkd {

namespace {

void send(const std::vector<std::string>& fields)
{
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (const auto& f : fields)
        iov.push_back(iovec{const_cast<char*>(f.data()), f.size()});
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

}  // namespace

JournalSink::JournalSink(sd_event* loop, std::uint64_t max_per_second,
                         std::function<std::uint64_t()> unstreamed_total)
    : loop_(loop), limit_(max_per_second), unstreamed_total_(std::move(unstreamed_total))
{
    unstreamed_seen_ = unstreamed_total_ ? unstreamed_total_() : 0;
    sd_event_add_time_relative(
        loop_, &timer_, CLOCK_MONOTONIC, 1'000'000, 0,
        [](sd_event_source* src, std::uint64_t, void* self) {
            // Nothing refused in the last second: sleep until the next event.
            if (!static_cast<JournalSink*>(self)->flush_not_logged()) {
                sd_event_source_set_enabled(src, SD_EVENT_OFF);
                return 0;
            }
            std::uint64_t now = 0;
            sd_event_now(sd_event_source_get_event(src), CLOCK_MONOTONIC, &now);
            sd_event_source_set_time(src, now + 1'000'000);
            sd_event_source_set_enabled(src, SD_EVENT_ON);
            return 0;
        },
        this);
    sd_event_source_set_enabled(timer_, SD_EVENT_ON);
}

JournalSink::~JournalSink()
{
    flush_not_logged();
    sd_event_source_disable_unref(timer_);
}

void JournalSink::on_event(const Event& e)
{
    std::uint64_t now = 0;
    sd_event_now(loop_, CLOCK_MONOTONIC, &now);
    if (limit_.allow(now))
        send(deletion_fields(e));
    int enabled = SD_EVENT_OFF;
    if (sd_event_source_get_enabled(timer_, &enabled) >= 0 && enabled == SD_EVENT_OFF) {
        sd_event_source_set_time(timer_, now + 1'000'000);
        sd_event_source_set_enabled(timer_, SD_EVENT_ON);
    }
}

void JournalSink::send_summary(const Totals& now, const Totals& before, const std::vector<ProcessStats>& top,
                               std::uint64_t interval_sec, std::string_view mode)
{
    send(summary_fields(now, before, top, interval_sec, mode));
}

bool JournalSink::flush_not_logged()
{
    std::uint64_t n = limit_.take_suppressed();
    if (unstreamed_total_) {
        std::uint64_t now = unstreamed_total_();
        n += now >= unstreamed_seen_ ? now - unstreamed_seen_ : now;  // the totals were reset
        unstreamed_seen_ = now;
    }
    // With max_journal_per_sec 0 nothing is logged by choice: no noise.
    if (n && limit_.rate())
        send(not_logged_fields(n, limit_.rate()));
    return n > 0;
}

}  // namespace unlinkd
