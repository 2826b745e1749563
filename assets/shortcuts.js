() => {
  // Page-wide keys: Ctrl/Cmd+Enter runs the visible tab's main action (Generate, Compare, Sweep); Esc cancels.
  const visible = (selector) => Array.from(document.querySelectorAll(selector)).find((node) => node.offsetParent !== null);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      const run = visible(".mf-run");
      if (run && !run.disabled) {
        event.preventDefault();
        run.click();
      }
    } else if (event.key === "Escape") {
      const cancel = visible(".mf-cancel");
      if (cancel) cancel.click();
    }
  });
}
