/* Token sampling with an explicit seeded RNG: penalties, temperature, top-k, top-p, min-p, greedy. */
#ifndef FC_SAMPLER_H
#define FC_SAMPLER_H

#include <stdint.h>

struct fc_sampling {
    float temperature;        /* <= 0: greedy */
    float top_p;              /* 1: off */
    int32_t top_k;            /* <= 0: off */
    float min_p;              /* 0: off */
    float presence_penalty;   /* subtracted once from tokens already generated */
    float frequency_penalty;  /* subtracted per occurrence in the generated tokens */
    float repetition_penalty; /* 1: off; HF style over prompt + generated tokens */
    uint64_t seed;
};

struct fc_sampler {
    struct fc_sampling p;
    uint64_t rng;
    int32_t vocab;
    int32_t * counts;   /* [vocab] occurrences among generated tokens */
    uint8_t * in_prompt; /* [vocab] token appears in the prompt */
    int32_t * idx;      /* [vocab] scratch */
    float * probs;      /* [vocab] scratch */
};

void fc_sampler_init(struct fc_sampler * s, int32_t vocab);
void fc_sampler_free(struct fc_sampler * s);
/* Start a generation: parameters, seed, and the prompt (for the repetition penalty). */
void fc_sampler_begin(struct fc_sampler * s, const struct fc_sampling * p, const int32_t * prompt, int32_t n_prompt);
/* Record a generated token (for the penalties). */
void fc_sampler_accept(struct fc_sampler * s, int32_t token);
/* Pick the next token from logits[vocab] (logits are modified). */
int32_t fc_sampler_sample(struct fc_sampler * s, float * logits);
/* log(sum(exp(logits))), computed stably in double. */
double fc_logsumexp(const float * logits, int32_t vocab);
/* log-softmax of logits[token]. */
float fc_logprob(const float * logits, int32_t vocab, int32_t token);
/* The min(k, vocab) largest logits' ids into ids[], largest first (the lower id first among equals); k >= 1. */
void fc_top_ids(const float * logits, int32_t vocab, int32_t k, int32_t * ids);
int32_t fc_argmax(const float * logits, int32_t n);

#endif
