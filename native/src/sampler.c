/* Sampling: penalties, temperature, top-k / top-p / min-p truncation, then a draw from a seeded RNG. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* splitmix64: small, good enough for sampling, fully determined by the seed. */
static uint64_t next_u64(uint64_t * state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double next_unit(uint64_t * state) {
    return (double)(next_u64(state) >> 11) * (1.0 / 9007199254740992.0);
}

void fc_sampler_init(struct fc_sampler * s, int32_t vocab) {
    memset(s, 0, sizeof *s);
    s->vocab = vocab;
    s->counts = fc_xcalloc((size_t)vocab, sizeof *s->counts);
    s->in_prompt = fc_xcalloc((size_t)vocab, 1);
    s->idx = fc_xcalloc((size_t)vocab, sizeof *s->idx);
    s->probs = fc_xcalloc((size_t)vocab, sizeof *s->probs);
}

void fc_sampler_free(struct fc_sampler * s) {
    free(s->counts);
    free(s->in_prompt);
    free(s->idx);
    free(s->probs);
    memset(s, 0, sizeof *s);
}

void fc_sampler_begin(struct fc_sampler * s, const struct fc_sampling * p, const int32_t * prompt, int32_t n_prompt) {
    s->p = *p;
    s->rng = p->seed;
    memset(s->counts, 0, (size_t)s->vocab * sizeof *s->counts);
    memset(s->in_prompt, 0, (size_t)s->vocab);
    for (int32_t i = 0; i < n_prompt; i++) {
        if (prompt[i] >= 0 && prompt[i] < s->vocab) s->in_prompt[prompt[i]] = 1;
    }
}

void fc_sampler_accept(struct fc_sampler * s, int32_t token) {
    if (token >= 0 && token < s->vocab) s->counts[token]++;
}

int32_t fc_argmax(const float * logits, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) {
        if (logits[i] > logits[best]) best = i;
    }
    return best;
}

double fc_logsumexp(const float * logits, int32_t vocab) {
    float mx = logits[fc_argmax(logits, vocab)];
    double sum = 0.0;
    for (int32_t i = 0; i < vocab; i++) sum += exp((double)(logits[i] - mx));
    return (double)mx + log(sum);
}

float fc_logprob(const float * logits, int32_t vocab, int32_t token) {
    return (float)((double)logits[token] - fc_logsumexp(logits, vocab));
}

void fc_top_ids(const float * logits, int32_t vocab, int32_t k, int32_t * ids) {
    if (k > vocab) k = vocab;
    int32_t n = 0;
    for (int32_t i = 0; i < vocab; i++) {
        /* insertion into the sorted prefix ids[0..n): larger first, the lower id first among equals */
        if (n == k && !(logits[i] > logits[ids[n - 1]])) continue;
        int32_t j = n < k ? n++ : k - 1;
        while (j > 0 && logits[i] > logits[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
}

static const float * g_sort_keys;

static int cmp_desc(const void * a, const void * b) {
    float x = g_sort_keys[*(const int32_t *)a], y = g_sort_keys[*(const int32_t *)b];
    if (x > y) return -1;
    if (x < y) return 1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

int32_t fc_sampler_sample(struct fc_sampler * s, float * logits) {
    const struct fc_sampling * p = &s->p;
    const int32_t V = s->vocab;
    for (int32_t i = 0; i < V; i++) {
        if (p->repetition_penalty > 0.0f && p->repetition_penalty != 1.0f && (s->in_prompt[i] || s->counts[i])) {
            logits[i] = logits[i] > 0.0f ? logits[i] / p->repetition_penalty : logits[i] * p->repetition_penalty;
        }
        if (s->counts[i]) logits[i] -= p->presence_penalty + p->frequency_penalty * (float)s->counts[i];
    }
    if (p->temperature <= 0.0f) return fc_argmax(logits, V);

    /* candidates: tokens within 30 temperatures of the best (the rest have probability < e^-30 of it),
       sorted by logit, then cut to top-k */
    const float best = logits[fc_argmax(logits, V)];
    const float floor_logit = best - 30.0f * p->temperature;
    int32_t n = 0;
    for (int32_t i = 0; i < V; i++) {
        if (logits[i] >= floor_logit) s->idx[n++] = i;
    }
    g_sort_keys = logits;
    qsort(s->idx, (size_t)n, sizeof *s->idx, cmp_desc);
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    const float mx = logits[s->idx[0]];
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        s->probs[i] = expf((logits[s->idx[i]] - mx) / p->temperature);
        sum += s->probs[i];
    }
    for (int32_t i = 0; i < n; i++) s->probs[i] = (float)(s->probs[i] / sum);
    /* min-p: drop tokens below min_p * the top probability */
    if (p->min_p > 0.0f) {
        int32_t keep = 1;
        while (keep < n && s->probs[keep] >= p->min_p * s->probs[0]) keep++;
        n = keep;
    }
    /* top-p: smallest prefix whose mass reaches top_p */
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        double cum = 0.0;
        int32_t keep = 0;
        while (keep < n) {
            cum += s->probs[keep++];
            if (cum >= p->top_p) break;
        }
        n = keep;
    }
    double mass = 0.0;
    for (int32_t i = 0; i < n; i++) mass += s->probs[i];
    double r = next_unit(&s->rng) * mass;
    for (int32_t i = 0; i < n; i++) {
        r -= s->probs[i];
        if (r < 0.0) return s->idx[i];
    }
    return s->idx[n - 1];
}
