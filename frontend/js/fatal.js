// Last line of defence (a classic script, loaded before the modules): an uncaught error or a
// module that fails to load shows a banner instead of leaving a half-drawn page.
(function () {
  function banner(message) {
    var show = function () {
      var el = document.getElementById("fatal-error");
      if (!el) {
        el = document.createElement("div");
        el.id = "fatal-error";
        el.className = "notice notice-error fatal";
        el.setAttribute("role", "alert");
        document.body.prepend(el);
      }
      el.textContent = "Something went wrong in the dashboard: " + message + " (details in the console)";
    };
    if (document.body) show();
    else document.addEventListener("DOMContentLoaded", show);
  }
  window.addEventListener("error", function (event) {
    var target = event.target;
    if (target && target !== window && (target.src || target.href)) {
      banner("could not load " + (target.src || target.href));
    } else if (event.message) {
      banner(event.message);
    }
  }, true);
  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    banner(reason && reason.message ? reason.message : String(reason));
  });
})();
