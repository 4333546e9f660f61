/* The pending confirmation (docs/appliance.md §2, §3): one call waits for the person; the
 * device times it out (min of the policy's confirm_timeout and the call's timeout), cancels it
 * when the host goes silent, and sends BUSY every second meanwhile. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "device_internal.h"

const char *verdict_name(int verdict) {
    switch (verdict) {
    case V_APPROVED: return "approved";
    case V_DECLINED: return "declined";
    case V_TIMEOUT: return "timeout";
    default: return "cancelled";
    }
}

int verdict_error(int verdict) {
    switch (verdict) {
    case V_DECLINED: return DEV_E_DECLINED;
    case V_TIMEOUT: return DEV_E_TIMEOUT;
    default: return DEV_E_CANCELLED;
    }
}

static void show(device *d) {
    const char *lines[SCREEN_MAX_LINES];
    for (unsigned i = 0; i < d->scr.n; i++) lines[i] = d->scr.line[i];
    d->pend.screen_no = ++d->screen_no;
    board_screen_show(d->b, d->pend.screen_no, lines, d->scr.n);
}

void confirm_begin(device *d, const dev_call *c, int kind, uint32_t timeout_s) {
    uint64_t now = board_millis(d->b);
    dev_pending *p = &d->pend;
    p->kind = kind;
    p->id = c->id;
    p->seq = c->seq;
    snprintf(p->method, sizeof p->method, "%s", c->method);
    p->timeout_ms = timeout_s * 1000u;
    p->deadline = now + p->timeout_ms;
    p->stage = 1;
    /* The request's bytes stay where they are; the next message goes to the other buffer. */
    p->held_rx = d->rx_cur;
    p->held_len = c->msg_len > d->link.rx_high ? c->msg_len : d->link.rx_high;
    d->rx_cur ^= 1;
    link_set_rx_buffer(&d->link, d->rx[d->rx_cur]);
    show(d);
    p->last_busy = now;
    link_send_busy(&d->link, p->seq, 1);
}

void confirm_end(device *d, int verdict) {
    dev_pending *p = &d->pend;
    if (p->kind == PEND_NONE) return;
    board_screen_done(d->b, p->screen_no, verdict_name(verdict));
    calls_complete(d, verdict);
    if (p->held_rx >= 0) sodium_memzero(d->rx[p->held_rx], p->held_len);
    vault_forget_pins(d->v);
    p->kind = PEND_NONE;
    p->held_rx = -1;
    d->last_activity = board_millis(d->b);
}

void device_button(device *d, int approve) {
    if (!d->booted || d->pend.kind == PEND_NONE) return;
    dev_pending *p = &d->pend;
    if (approve && p->second && p->stage == 1) {
        board_screen_done(d->b, p->screen_no, "approved");
        screen_reset(&d->scr);
        screen_line(&d->scr, "SECOND CONFIRMATION");
        screen_line(&d->scr, "%s", p->plan.summary);
        screen_line(&d->scr, "The previous screen needs a second yes:");
        screen_line(&d->scr, "it drops disablement values of the authority.");
        screen_line(&d->scr, "Approve again to sign; decline to refuse.");
        p->stage = 2;
        p->deadline = board_millis(d->b) + p->timeout_ms;
        show(d);
        return;
    }
    confirm_end(d, approve ? V_APPROVED : V_DECLINED);
}

uint32_t confirm_seconds_left(const device *d) {
    uint64_t now = board_millis(d->b);
    if (d->pend.kind == PEND_NONE || now >= d->pend.deadline) return 0;
    return (uint32_t)((d->pend.deadline - now + 999) / 1000);
}

void confirm_tick(device *d, uint64_t now) {
    dev_pending *p = &d->pend;
    if (p->kind == PEND_NONE) return;
    if (now >= p->deadline) {
        confirm_end(d, V_TIMEOUT);
        return;
    }
    if (now > d->link.last_rx && now - d->link.last_rx >= DEV_HOST_SILENCE_MS) {
        board_log(d->b, "device: the host went silent; the pending call is cancelled");
        confirm_end(d, V_CANCELLED);
        return;
    }
    if (now > p->last_busy && now - p->last_busy >= DEV_BUSY_INTERVAL_MS) {
        p->last_busy = now;
        link_send_busy(&d->link, p->seq, 1);
    }
}
