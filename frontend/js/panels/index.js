// Every panel module of the run page. A probe panel is one more file in this folder that calls
// registerPanel() (see ../panels.js), plus one import line here.

import "./scalars.js";
import "./hessian.js";
import "./opposing.js";
import "./collapse.js";
import "./grokking.js";
import "./landscape.js";
import "./explain-card.js";
