// Preload for test/scripts/lazy-imports.test.ts: every package named in $FLASHCHAT_TEST_BANNED (comma-separated)
// becomes a module whose import throws, so a command that loads one fails naming it.
const banned = (process.env.FLASHCHAT_TEST_BANNED ?? "").split(",").filter(Boolean);
Bun.plugin({
  name: "ban-imports",
  setup(build) {
    for (const name of banned)
      build.module(name, () => {
        throw new Error(`imported ${name}, which this command should not load`);
      });
  },
});
