// The TUI's settings: every config key with its value and where it came from; Enter edits one in the footer,
// checked as it is typed (lib/config's validation) and saved atomically to the user config as `config set` does.
import type { KeyEvent } from "@opentui/core";
import { describeSource, formatValue, KEY_SPECS, KEYS } from "../config/index.ts";
import { settingValue, setUserSetting } from "../config/edit.ts";
import { describeAllowed, parseValue } from "../config/validate.ts";
import { isUserError } from "../errors.ts";
import { ListView } from "./list-pane.ts";
import type { AppServices, View } from "./ui.ts";

/** Settings the TUI's chat applies itself on its next request; every other one the server reads when it starts. */
const CLIENT_KEYS = new Set(["TEMPERATURE", "TOP_P", "SHOW_THINKING", "COLOR_OUTPUT", "TUI_THEME", "API_KEY"]);

/** What the footer says about a value being typed for `key`. */
export function checkSetting(key: string, value: string): { ok: boolean; message: string } {
  const spec = KEY_SPECS.get(key)!;
  const parsed = parseValue(spec, value);
  return parsed.ok ? { ok: true, message: `✓ ${key} accepts it · Enter saves` } : { ok: false, message: `✗ ${key} expects ${describeAllowed(spec)}` };
}

export class SettingsView extends ListView implements View {
  readonly name = "settings" as const;
  readonly help = ["j k ↑ ↓ g G  move    Enter  edit (checked as typed, saved atomically)", "/TEXT  settings whose name or description has TEXT"];
  private keys: string[] = [];

  constructor(app: AppServices) {
    super(app, "settings");
    this.pane.onMove = () => this.describeSelected();
  }

  shown(): void {
    this.draw();
  }

  protected draw(): void {
    const config = this.app.config;
    const q = this.query.toLowerCase();
    const specs = KEYS.filter((k) => !q || k.key.toLowerCase().includes(q) || k.description.toLowerCase().includes(q));
    this.keys = specs.map((k) => k.key);
    const width = Math.max(...KEYS.map((k) => k.key.length));
    this.pane.header = `settings · saved to ${config.paths.userConfigFile}${q ? ` · matching "${this.query}"` : ""}`;
    this.pane.setRows(
      specs.map((spec) => {
        const raw = formatValue(settingValue(config, spec.key));
        const value = "secret" in spec && spec.secret && raw ? "********" : raw;
        return { text: `${spec.key.padEnd(width)}  ${JSON.stringify(value).padEnd(24)} ${describeSource(config.sources[spec.key]!)}` };
      }),
    );
  }

  /** The selected setting's description in the footer. */
  private describeSelected(): void {
    const key = this.keys[this.pane.index];
    if (key) this.app.notify(`${key}: ${KEY_SPECS.get(key)!.description}`);
  }

  key(k: KeyEvent): boolean {
    if (this.pane.key(k)) {
      this.describeSelected();
      return true;
    }
    const key = this.keys[this.pane.index];
    if (k.name === "return" && key) {
      const spec = KEY_SPECS.get(key)!;
      const current = spec.secret ? "" : formatValue(settingValue(this.app.config, key));
      this.app.prompt({ label: `${key}=`, value: current, onInput: (v) => checkSetting(key, v), onSubmit: (v) => this.save(key, v) });
      return true;
    }
    return false;
  }

  /** Save one setting to the user config (validated, atomic), reload, and say when a higher source still wins. */
  async save(key: string, value: string): Promise<void> {
    if (!KEY_SPECS.has(key)) return this.app.notify(`unknown setting ${key} (the Settings view lists them)`, "error");
    const check = checkSetting(key, value);
    if (!check.ok) return this.app.notify(`not saved: ${check.message.slice(2)}`, "error");
    try {
      setUserSetting(this.app.config.paths.userConfigFile, key, value);
    } catch (e) {
      if (isUserError(e)) return this.app.notify(e.message, "error");
      throw e;
    }
    await this.app.reloadConfig();
    const src = this.app.config.sources[key];
    if (src && src.kind !== "user" && src.kind !== "default") this.app.notify(`${key} saved, but ${describeSource(src)} still overrides it`, "warn");
    else {
      // the server reads its settings when it starts; the chat's own (sampling, thinking, colour) apply at once
      const later = !CLIENT_KEYS.has(key) ? " · a running server uses it after :restart" : "";
      this.app.notify(`${key}=${JSON.stringify(value.trim())} saved${later}`, "ok");
    }
  }
}
