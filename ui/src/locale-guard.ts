// Under a POSIX "C" locale (LANG unset, as on servers and CI) WebKitGTK reports
// navigator.language === "C", and `new Intl.NumberFormat("C")` throws a RangeError, which
// uPlot does while loading. This module is imported first and makes such a tag fall back to
// the default locale instead of breaking the whole UI.
const Native = Intl.NumberFormat;

function safeLocales(locales?: string | string[]): string | string[] | undefined {
  try {
    Intl.getCanonicalLocales(locales);
    return locales;
  } catch {
    return undefined;
  }
}

function GuardedNumberFormat(locales?: string | string[], options?: Intl.NumberFormatOptions) {
  return new Native(safeLocales(locales), options);
}
GuardedNumberFormat.prototype = Native.prototype;
GuardedNumberFormat.supportedLocalesOf = Native.supportedLocalesOf;

Intl.NumberFormat = GuardedNumberFormat as unknown as typeof Intl.NumberFormat;

export {};
